//! The programs of the book's "Getting started" chapter, one function per
//! step, run in order: the README's program, then one step per pattern.
//!
//! ```text
//! cargo run --example first_steps
//! ```

use std::time::Duration;

use msg::ReqError;
use msg::prelude::*;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The README's program: request/reply over TCP, publish/subscribe in-process.
async fn taste() -> Result {
    // ANCHOR: taste
    // A server: answers every request, up to 16 at a time.
    let rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?; // port 0: any free port
    tokio::spawn(rep.serve(
        16,
        |request, _peer| async move { request.to_ascii_uppercase() },
    ));

    // A client: many requests may be in flight; each has a deadline.
    let req = ReqSocket::new();
    req.connect(&endpoint.to_string())?;
    assert_eq!(req.request("hello").await?, "HELLO");

    // Publish/subscribe, filtered by topic prefix at the publisher.
    let publisher = PubSocket::new();
    let endpoint = publisher.bind("inproc://prices").await?;
    let mut subscriber = SubSocket::new();
    subscriber.subscribe("price.").await;
    subscriber.connect(&endpoint.to_string())?;
    publisher
        .wait_for_subscribers(1, std::time::Duration::from_secs(5))
        .await;
    publisher.publish("price.btc", "97000")?;
    let message = subscriber.next().await.ok_or("closed")?;
    assert_eq!(message.payload(), "97000");
    Ok(())
    // ANCHOR_END: taste
}

/// Request/reply: taking requests one by one, and a request that times out.
async fn request_reply() -> Result {
    // ANCHOR: reqrep
    let mut rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(async move {
        // Each request knows its peer and is answered on its own connection,
        // in any order, from any task.
        while let Some(request) = rep.next().await {
            let length = request.payload().len().to_string();
            let _ = request.reply(length).await; // fails only if the client left
        }
    });

    let mut options = SocketOptions::new();
    options.request_timeout(Duration::from_millis(200));
    let req = ReqSocket::with_options(options.clone())?;
    req.connect(&endpoint.to_string())?;
    assert_eq!(req.request("four").await?, "4");

    // No peer at all: the request waits for one, then times out.
    let alone = ReqSocket::with_options(options)?;
    assert!(matches!(
        alone.request("anyone?").await,
        Err(ReqError::Timeout)
    ));
    // ANCHOR_END: reqrep
    Ok(())
}

/// Publish/subscribe: prefixes, and per-subscriber sequence numbers.
async fn publish_subscribe() -> Result {
    // ANCHOR: pubsub
    let publisher = PubSocket::new();
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await?;
    let mut weather = SubSocket::new();
    weather.subscribe("weather.").await;
    weather.connect(&endpoint.to_string())?;
    publisher
        .wait_for_subscribers(1, Duration::from_secs(5))
        .await;

    publisher.publish("weather.paris", "14C")?;
    publisher.publish("news.sport", "2-1")?; // no subscriber matches: not sent
    publisher.publish("weather.oslo", "-3C")?;

    let first = weather.next().await.ok_or("closed")?;
    let second = weather.next().await.ok_or("closed")?;
    assert_eq!(first.topic(), "weather.paris");
    assert_eq!(first.payload(), "14C");
    // Numbered per subscriber: the news it never asked for leaves no gap.
    assert_eq!((first.seq(), second.seq()), (1, 2));
    // ANCHOR_END: pubsub
    Ok(())
}

/// Push/Pull: work spread over two workers, nothing dropped.
async fn pipeline() -> Result {
    // ANCHOR: pipeline
    let push = PushSocket::new();
    let endpoint = push.bind("tcp://127.0.0.1:0").await?;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let pull = PullSocket::new();
        pull.connect(&endpoint.to_string())?;
        workers.push(pull);
    }
    push.wait_for_peers(2, Duration::from_secs(5)).await;

    for job in 1..=4 {
        push.send(format!("job {job}")).await?; // waits if every worker is full
    }
    for worker in &mut workers {
        // Round-robin: each worker gets every other job.
        let a = worker.next().await.ok_or("closed")?;
        let b = worker.next().await.ok_or("closed")?;
        println!("  a worker got {:?} and {:?}", a.first(), b.first());
    }
    // ANCHOR_END: pipeline
    Ok(())
}

/// Dealer/Router: requests without lock-step, answers by route.
async fn dealer_router() -> Result {
    // ANCHOR: dealer_router
    let mut router = RouterSocket::new();
    let endpoint = router.bind("tcp://127.0.0.1:0").await?;
    tokio::spawn(async move {
        // Every message comes with the route back to its sender.
        while let Some((route, message)) = router.next().await {
            let parts = message.into_parts();
            let [id, body] = &parts[..] else { continue };
            let answer = [id.clone(), body.to_ascii_uppercase().into()];
            let _ = router.send_to(&route, answer).await; // an error, never a silent drop
        }
    });

    let mut options = SocketOptions::new();
    options.identity("client-1");
    let mut dealer = DealerSocket::with_options(options)?;
    dealer.connect(&endpoint.to_string())?;
    for (id, body) in [("1", "one"), ("2", "two"), ("3", "three")] {
        dealer.send([id, body]).await?; // no waiting for a reply
    }
    for _ in 0..3 {
        // Replies carry the correlation id we put in the first part.
        let reply = dealer.next().await.ok_or("closed")?;
        println!("  reply to {:?}: {:?}", reply.first(), reply.last());
    }
    // ANCHOR_END: dealer_router
    Ok(())
}

/// Pair: exactly one peer, messages both ways.
async fn pair() -> Result {
    // ANCHOR: pair
    let mut left = PairSocket::new();
    let endpoint = left.bind("inproc://pair").await?;
    let mut right = PairSocket::new();
    right.connect(&endpoint.to_string())?;

    left.send("ping").await?;
    assert_eq!(right.next().await.ok_or("closed")?, "ping");
    right.send("pong").await?;
    assert_eq!(left.next().await.ok_or("closed")?, "pong");
    // ANCHOR_END: pair
    Ok(())
}

/// Multipart messages: parts travel together, delivered whole.
async fn multipart() -> Result {
    // ANCHOR: multipart
    let push = PushSocket::new();
    let endpoint = push.bind("inproc://parts").await?;
    let mut pull = PullSocket::new();
    pull.connect(&endpoint.to_string())?;

    let mut message = Message::from_parts(["header", "body"]);
    message.push("trailer");
    push.send(message).await?;

    let received = pull.next().await.ok_or("closed")?;
    assert_eq!(received.len(), 3);
    assert_eq!(received.first(), "header");
    assert_eq!(received.last(), "trailer");
    // ANCHOR_END: multipart
    Ok(())
}

/// The reliable layer: stored before the peer is even there, delivered once.
async fn reliable() -> Result {
    // ANCHOR: reliable
    let (a, b): (PeerId, PeerId) = ("alice".parse()?, "bob".parse()?);
    let alice =
        ReliableSocket::open(a.clone(), ReliableOptions::new(), MemoryBackend::new()).await?;
    let endpoint = alice.bind("inproc://reliable").await?;

    // Stored now; bob is not connected yet.
    let seq = alice.send_to(&b, "order 1").await?;

    let bob = ReliableSocket::open(b.clone(), ReliableOptions::new(), MemoryBackend::new()).await?;
    bob.connect(&endpoint.to_string())?;
    let delivery = bob.recv().await.ok_or("closed")?;
    assert_eq!((delivery.peer(), delivery.seq()), (&a, seq));
    delivery.ack().await?; // processed: never delivered again
    alice.wait_acked(&b, seq).await?;
    // ANCHOR_END: reliable
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result {
    println!("1. the README's program");
    taste().await?;
    println!("2. request/reply");
    request_reply().await?;
    println!("3. publish/subscribe");
    publish_subscribe().await?;
    println!("4. pipeline: push/pull");
    pipeline().await?;
    println!("5. asynchronous request/reply: dealer/router");
    dealer_router().await?;
    println!("6. exclusive pair");
    pair().await?;
    println!("7. multipart messages");
    multipart().await?;
    println!("8. reliable delivery");
    reliable().await?;
    println!("every step ran");
    Ok(())
}
