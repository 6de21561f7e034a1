//! Request deadlines on a virtual clock: a request times out whether or not a
//! connection is up, waits for a connection while there is none, and fails
//! at once (sending nothing) when it cannot be encoded.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use msg_socket::wire::WireError;
use msg_socket::{RepSocket, ReqError, ReqSocket, SocketOptions};
use tokio::time::Instant;

fn inproc_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://reqrep-timeouts-{what}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn opts() -> SocketOptions {
    let mut o = SocketOptions::new();
    common::quick(&mut o);
    o
}

/// The virtual clock lands on the deadline, give or take the timer wheel's
/// millisecond.
fn assert_at(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(2),
        "fired after {elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn request_times_out_when_no_connection_is_up() {
    let req = ReqSocket::with_options(opts()).unwrap();
    // Nobody ever binds this name: every connect attempt is refused.
    req.connect(&inproc_name("nobody")).unwrap();

    let start = Instant::now();
    let err = req
        .request_timeout("hello", Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(matches!(err, ReqError::Timeout), "{err:?}");
    assert_at(start.elapsed(), Duration::from_secs(3));

    // The socket's own default deadline applies to `request`.
    let mut o = opts();
    o.request_timeout(Duration::from_millis(750));
    let lonely = ReqSocket::with_options(o).unwrap();
    let start = Instant::now();
    let err = lonely.request("no endpoint at all").await.unwrap_err();
    assert!(matches!(err, ReqError::Timeout), "{err:?}");
    assert_at(start.elapsed(), Duration::from_millis(750));
    assert_eq!(lonely.stats().msgs_sent, 0);
    assert_eq!(lonely.stats().requests, 0);
}

#[tokio::test(start_paused = true)]
async fn request_times_out_when_the_peer_never_answers() {
    let name = inproc_name("silent");
    let mut rep = RepSocket::with_options(opts()).unwrap();
    rep.bind(&name).await.unwrap();
    let req = ReqSocket::with_options(opts()).unwrap();
    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(1)).await);

    // The Rep takes the request and sits on it: the connection stays up,
    // heartbeats keep flowing, and the request still times out on time.
    let start = Instant::now();
    let (result, held) = tokio::join!(
        req.request_timeout("first", Duration::from_secs(20)),
        async { rep.recv().await.unwrap() }
    );
    assert!(matches!(result, Err(ReqError::Timeout)), "{result:?}");
    assert_at(start.elapsed(), Duration::from_secs(20));
    assert_eq!(held.payload(), "first");
    assert_eq!(req.peers(), 1, "the connection survived the timeout");

    // A late reply to the timed-out request is ignored and does not satisfy
    // the next request, which gets its own answer.
    held.reply("late answer to first").await.unwrap();
    let (result, ()) = tokio::join!(req.request("second"), async {
        let r = rep.recv().await.unwrap();
        assert_eq!(r.payload(), "second");
        r.reply("answer to second").await.unwrap();
    });
    assert_eq!(result.unwrap(), "answer to second");

    // A request dropped without a reply also leaves the requester to its
    // deadline.
    let start = Instant::now();
    let (result, ()) = tokio::join!(
        req.request_timeout("third", Duration::from_secs(2)),
        async {
            drop(rep.recv().await.unwrap());
        }
    );
    assert!(matches!(result, Err(ReqError::Timeout)), "{result:?}");
    assert_at(start.elapsed(), Duration::from_secs(2));
    assert_eq!(req.stats().requests, 1, "only one request succeeded");
}

#[tokio::test(start_paused = true)]
async fn request_waits_for_a_connection_and_succeeds_once_the_rep_binds() {
    let name = inproc_name("late");
    let req = ReqSocket::with_options(opts()).unwrap();
    req.connect(&name).unwrap();

    let start = Instant::now();
    let (result, _rep) = tokio::join!(
        req.request_timeout("early", Duration::from_secs(5)),
        async {
            // The Rep appears two (virtual) seconds after the request was made.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rep = RepSocket::with_options(opts()).unwrap();
            rep.bind(&name).await.unwrap();
            let mut rep = rep;
            let r = rep.recv().await.unwrap();
            let answer = [b"re:".as_slice(), r.payload()].concat();
            r.reply(answer).await.unwrap();
            rep
        }
    );
    assert_eq!(result.unwrap(), "re:early");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}: the reconnect backoff (max 100 ms) should bring it in soon after the bind"
    );
}

#[tokio::test]
async fn request_waits_for_a_connection_over_ipc() {
    let s = common::setup("ipc");
    let req = ReqSocket::with_options(s.client.clone()).unwrap();
    let mut events = req.events();
    req.connect(&s.bind).unwrap();
    let pending = tokio::spawn(async move {
        let r = req
            .request_timeout("before bind", Duration::from_secs(10))
            .await;
        (r, req)
    });
    // The connect has failed at least once: nobody was there when the
    // request was made.
    use futures::StreamExt;
    loop {
        match events.next().await.unwrap() {
            msg_socket::SocketEvent::ConnectFailed { .. } => break,
            _ => continue,
        }
    }
    let mut rep = RepSocket::with_options(s.server.clone()).unwrap();
    rep.bind(&s.bind).await.unwrap();
    let r = rep.recv().await.unwrap();
    assert_eq!(r.payload(), "before bind");
    r.reply("after bind").await.unwrap();
    let (result, _req) = pending.await.unwrap();
    assert_eq!(result.unwrap(), "after bind");
}

#[tokio::test(start_paused = true)]
async fn oversized_request_fails_with_encode_and_sends_nothing() {
    let name = inproc_name("big");
    let mut o = opts();
    o.max_frame_size(1024);
    let mut rep = RepSocket::with_options(opts()).unwrap();
    rep.bind(&name).await.unwrap();
    let req = ReqSocket::with_options(o).unwrap();

    // Before any connection: fails at once, it does not wait for a peer.
    let start = Instant::now();
    let err = req.request(vec![7u8; 4096]).await.unwrap_err();
    assert!(
        matches!(err, ReqError::Encode(WireError::FrameTooLarge { .. })),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);

    req.connect(&name).unwrap();
    assert!(req.wait_for_peers(1, Duration::from_secs(1)).await);
    let err = req.request(vec![7u8; 4096]).await.unwrap_err();
    assert!(matches!(err, ReqError::Encode(_)), "{err:?}");
    assert_eq!(req.stats().msgs_sent, 0, "nothing was sent");

    // The connection is fine, and the next thing the Rep sees is the next
    // (small) request: the big one never went out.
    let (result, ()) = tokio::join!(req.request("small"), async {
        let r = rep.recv().await.unwrap();
        assert_eq!(r.payload(), "small");
        r.reply("ok").await.unwrap();
    });
    assert_eq!(result.unwrap(), "ok");
    assert_eq!(rep.stats().msgs_received, 1);
    assert_eq!(req.stats().msgs_sent, 1);
}
