//! The sending sockets as `futures::Sink`s, on real sockets: a whole stream
//! forwarded through backpressure with nothing lost, and what `close` says
//! about a message the sink still held.

use crate::common::{self, Setup, quick};

use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, StreamExt, stream};
use msg_socket::{
    DealerSocket, Message, PairSocket, PubSocket, PublishError, PullSocket, PushSocket,
    RouterSocket, SendError, SocketOptions, SubSocket,
};

const WAIT: Duration = Duration::from_secs(10);

fn options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    quick(&mut opts);
    opts
}

fn numbered(n: u32) -> impl futures::Stream<Item = Result<Bytes, SendError>> {
    stream::iter(0..n).map(|i| Ok(Bytes::from(i.to_be_bytes().to_vec())))
}

fn number(message: &Message) -> u32 {
    let part: [u8; 4] = message.last()[..].try_into().expect("a 4-byte payload");
    u32::from_be_bytes(part)
}

over_every_transport!(
    push_sink_waits_at_the_mark_and_delivers_all,
    dealer_and_pair_sinks
);

/// A stream forwarded into a Push socket that has no peer yet parks up to
/// the mark and waits; once a puller connects, every message arrives, in
/// order.
async fn push_sink_waits_at_the_mark_and_delivers_all(setup: Setup) {
    const N: u32 = 5_000;
    let mut opts = setup.server.clone();
    opts.send_hwm(8);
    let mut push = PushSocket::with_options(opts).unwrap();
    let bound = push.bind(&setup.bind).await.unwrap().to_string();

    let forward = tokio::spawn(async move { numbered(N).forward(&mut push).await.map(|()| push) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !forward.is_finished(),
        "5,000 messages cannot all be taken with no peer and a mark of 8"
    );

    let mut pull = PullSocket::with_options(setup.client.clone()).unwrap();
    pull.connect(&bound).unwrap();
    for expected in 0..N {
        let message = next(&mut pull).await;
        assert_eq!(number(&message), expected, "in order, none missing");
    }
    let push = tokio::time::timeout(WAIT, forward)
        .await
        .expect("forward ends")
        .unwrap()
        .expect("no send error");
    assert!(push.close(WAIT).await.is_complete());
}

/// A Dealer's sink reaches a Router, and a Pair's sink its peer, with
/// multipart messages whole; both through a mark of 4.
async fn dealer_and_pair_sinks(setup: Setup) {
    const N: u32 = 1_000;
    let mut small = setup.client.clone();
    small.send_hwm(4);

    let mut router = RouterSocket::with_options(setup.server.clone()).unwrap();
    let at = router.bind(&setup.bind).await.unwrap().to_string();
    let mut dealer = DealerSocket::with_options(small.clone()).unwrap();
    dealer.connect(&at).unwrap();
    let sending =
        tokio::spawn(async move { numbered(N).forward(&mut dealer).await.map(|()| dealer) });
    for expected in 0..N {
        let (_, message) = next(&mut router).await;
        assert_eq!(number(&message), expected);
    }
    sending.await.unwrap().expect("no send error");
    router.close(Duration::ZERO).await;

    let mut a = PairSocket::with_options(setup.server.clone()).unwrap();
    let at = a.bind(&setup.bind).await.unwrap().to_string();
    let mut b = PairSocket::with_options(small).unwrap();
    b.connect(&at).unwrap();
    let sending = tokio::spawn(async move {
        let parts = stream::iter(0..N).map(|i| {
            Ok(Message::from_parts([
                Bytes::from("n"),
                Bytes::from(i.to_be_bytes().to_vec()),
            ]))
        });
        parts.forward(&mut b).await.map(|()| b)
    });
    for expected in 0..N {
        let message = next(&mut a).await;
        assert_eq!(message.len(), 2, "multipart through the sink, whole");
        assert_eq!(number(&message), expected);
    }
    sending.await.unwrap().expect("no send error");
}

async fn next<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the next message in time")
        .expect("the socket is open")
}

#[tokio::test]
async fn a_message_the_sink_still_holds_is_reported_by_close() {
    let mut opts = options();
    opts.send_hwm(1);
    let mut push = PushSocket::with_options(opts).unwrap();
    // Nothing to connect to: the first message parks, the second stays in
    // the sink.
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for payload in ["parked", "held"] {
        assert!(Sink::<&str>::poll_ready(std::pin::Pin::new(&mut push), &mut cx).is_ready());
        std::pin::Pin::new(&mut push).start_send(payload).unwrap();
    }
    assert!(
        Sink::<&str>::poll_flush(std::pin::Pin::new(&mut push), &mut cx).is_pending(),
        "the held message has no room"
    );
    // A second start_send without a ready sink is refused, and the held
    // message stays.
    assert!(matches!(
        std::pin::Pin::new(&mut push).start_send("third"),
        Err(SendError::Full)
    ));
    let report = push.close(Duration::ZERO).await;
    assert_eq!(report.undelivered_frames, 2, "parked and held: {report:?}");
    // Each a Message frame: its 7-byte header and the payload.
    assert_eq!(
        report.undelivered_bytes,
        2 * 7 + "parked".len() + "held".len(),
        "{report:?}"
    );
}

/// A Pub socket's sink never waits: with room for the whole stream at the
/// subscriber's mark, all of it arrives, in order, and nothing is dropped.
#[tokio::test]
async fn a_stream_of_publications_forwarded_into_pub_reaches_the_subscriber() {
    const N: u32 = 2_000;
    let mut opts = options();
    opts.send_hwm(N as usize);
    let mut publisher = PubSocket::with_options(opts).unwrap();
    let at = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut opts = options();
    opts.recv_hwm(N as usize);
    let mut sub = SubSocket::with_options(opts).unwrap();
    sub.subscribe("t").await;
    sub.connect(&at).unwrap();
    assert!(publisher.wait_for_subscribers(1, WAIT).await);
    let publications = stream::iter(0..N)
        .map(|i| Ok::<_, PublishError>((Bytes::from("t"), i.to_be_bytes().to_vec())));
    publications.forward(&mut publisher).await.unwrap();
    for expected in 0..N {
        let message = common::next_message(&mut sub, WAIT).await;
        assert_eq!(message.topic(), "t");
        assert_eq!(message.payload()[..], expected.to_be_bytes());
    }
    assert_eq!(publisher.stats().dropped_hwm, 0);
}
