//! A connection flood: connections past `max_connections` (handshakes in
//! progress included) are refused at once, counted and told why, while the
//! connections already served carry on.

use crate::raw;

use std::time::Duration;

use crate::raw::{EchoRep, HANG, RawPeer};
use msg_socket::wire::{Answer, HandshakeCodec, Reason};
use msg_socket::{RepSocket, ReqSocket, SocketOptions};

#[tokio::test]
async fn connections_past_max_connections_are_refused_at_once_and_counted() {
    raw::record_panics();
    let mut opts = SocketOptions::new();
    // Long enough that the stalled connections hold their places while the
    // flood arrives; their end is checked too.
    opts.max_connections(4)
        .handshake_timeout(Duration::from_millis(500));
    let rep = RepSocket::with_options(opts).unwrap();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap();

    let req = ReqSocket::new();
    req.connect(&endpoint.to_string()).unwrap();
    assert!(req.wait_for_peers(1, HANG).await);
    let rep = EchoRep::spawn(rep);
    assert_eq!(req.request("before").await.unwrap(), "before");

    // The partner holds one place; ten silent connections follow.
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(RawPeer::connect(&endpoint).await);
    }
    // The partner is served during the flood.
    assert_eq!(req.request("during").await.unwrap(), "during");

    let mut overloaded = 0;
    let mut timed_out = 0;
    for peer in flood {
        let closed = peer.read_until_closed().await;
        let mut bytes = closed.bytes;
        let answer = HandshakeCodec::new()
            .decode_answer(&mut bytes)
            .expect("valid answer")
            .expect("an answer before EOF");
        match answer {
            Answer::Reject {
                code: Reason::Overloaded,
                ..
            } => overloaded += 1,
            Answer::Reject {
                code: Reason::HandshakeTimeout,
                ..
            } => timed_out += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((overloaded, timed_out), (7, 3));

    let stats = rep.stats().await;
    assert_eq!(stats.connections_refused, 7);
    assert_eq!(stats.handshake_failures, 3);
    assert_eq!(stats.active_peers, 1);

    // The places of the timed-out connections are free again.
    let late = ReqSocket::new();
    late.connect(&endpoint.to_string()).unwrap();
    assert_eq!(late.request("after").await.unwrap(), "after");
    assert_eq!(req.request("after").await.unwrap(), "after");
    raw::assert_no_panic_on_this_thread();
}
