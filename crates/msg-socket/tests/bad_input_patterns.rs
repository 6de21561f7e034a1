//! Bad input particular to Push/Pull, Dealer/Router and Pair, over real
//! TCP: frames of the wrong kind for the pattern, multipart messages of too
//! many parts or too many bytes, a message cut before its last part, and a
//! second PAIR peer. A raw peer (see `raw`) attacks; each time the offender
//! alone is closed with the reason, it is counted and reported, nothing of
//! its broken message is delivered, and a well-behaved peer of the same
//! socket keeps being served.

use crate::raw::{self, HANG, RawPeer, frames_in};

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use msg_socket::wire::{Answer, Frame, Hello, Reason, SocketType};
use msg_socket::{
    MAX_PARTS, PairSocket, PullSocket, PushSocket, RouterSocket, SocketEvent, SocketEvents,
    SocketOptions,
};
use msg_testkit::next_matching;

const LIMIT: usize = 64 * 1024;

fn victim_options() -> SocketOptions {
    let mut opts = SocketOptions::new();
    opts.max_frame_size(LIMIT)
        .reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    opts
}

/// Reads until the socket closes the raw peer, and returns the reason its
/// Close frame gave.
async fn closed_with(attacker: RawPeer) -> (Reason, String) {
    let closed = attacker.read_until_closed().await;
    assert!(
        !closed.reset,
        "the socket reset the stream instead of closing it"
    );
    frames_in(closed.bytes)
        .into_iter()
        .find_map(|f| match f {
            Frame::Close { code, text } => Some((code, text)),
            _ => None,
        })
        .expect("a Close frame before the end")
}

async fn misbehaved(events: &mut SocketEvents) -> String {
    tokio::time::timeout(
        HANG,
        next_matching(events, |e| match e {
            SocketEvent::PeerMisbehaved { error, .. } => Some(error),
            _ => None,
        }),
    )
    .await
    .expect("a PeerMisbehaved event")
}

/// A bound Pull with one well-behaved pusher, and an attacker past its
/// handshake as a PUSH.
struct PullVictim {
    pull: PullSocket,
    good: PushSocket,
    events: SocketEvents,
    attacker: RawPeer,
}

impl PullVictim {
    async fn start() -> Self {
        let pull = PullSocket::with_options(victim_options()).unwrap();
        let events = pull.events();
        let bound = pull.bind("tcp://127.0.0.1:0").await.unwrap();
        let good = PushSocket::new();
        good.connect(&bound.to_string()).unwrap();
        let mut attacker = RawPeer::connect(&bound).await;
        attacker.handshake_as(SocketType::Push).await;
        assert!(pull.wait_for_peers(2, HANG).await);
        Self {
            pull,
            good,
            events,
            attacker,
        }
    }

    /// The attack is over: the offender was closed with `code`, counted,
    /// reported, and the good pusher's next message is the next one the
    /// puller takes.
    async fn check(mut self, code: Reason, text: &str) {
        raw::record_panics();
        let (got_code, got_text) = closed_with(self.attacker).await;
        assert_eq!(got_code, code, "{got_text}");
        assert!(got_text.contains(text), "{got_text}");
        let error = misbehaved(&mut self.events).await;
        assert!(error.contains(text), "{error}");
        assert_eq!(self.pull.stats().protocol_errors, 1);
        self.good.send("still served").await.unwrap();
        let next = tokio::time::timeout(HANG, self.pull.next())
            .await
            .expect("the good pusher is served")
            .unwrap();
        assert_eq!(next, "still served", "nothing of the attack was delivered");
        assert_eq!(self.pull.stats().msgs_received, 1);
        raw::assert_no_panic_on_this_thread();
    }
}

#[tokio::test]
async fn a_pull_closes_a_peer_that_sends_a_frame_of_another_pattern() {
    let mut v = PullVictim::start().await;
    v.attacker
        .send_frame(&Frame::Publish {
            topic: Bytes::from_static(b"t"),
            seq: 1,
            payload: Bytes::from_static(b"x"),
        })
        .await;
    v.check(Reason::ProtocolError, "PULL").await;
}

#[tokio::test]
async fn a_pull_closes_a_peer_that_sends_too_many_parts() {
    let mut v = PullVictim::start().await;
    for _ in 0..MAX_PARTS {
        v.attacker
            .send_frame(&Frame::Part {
                payload: Bytes::from_static(b"p"),
            })
            .await;
    }
    v.attacker
        .send_frame(&Frame::Message {
            payload: Bytes::from_static(b"last"),
        })
        .await;
    v.check(Reason::ProtocolError, "parts").await;
}

#[tokio::test]
async fn a_pull_closes_a_peer_whose_parts_add_up_past_the_frame_limit() {
    let mut v = PullVictim::start().await;
    // Each part is within the limit; together they are not, and the socket
    // stops at the part that crosses it instead of buffering on.
    let part = Bytes::from(vec![1u8; LIMIT / 2]);
    for _ in 0..3 {
        v.attacker
            .send_frame(&Frame::Part {
                payload: part.clone(),
            })
            .await;
    }
    v.check(Reason::FrameTooLarge, "").await;
}

#[tokio::test]
async fn a_message_cut_before_its_last_part_delivers_nothing() {
    let mut v = PullVictim::start().await;
    v.attacker
        .send_frame(&Frame::Part {
            payload: Bytes::from_static(b"first of two"),
        })
        .await;
    drop(v.attacker);
    // The cut connection goes away without a word; the good pusher's
    // message is the first and only one delivered.
    tokio::time::timeout(HANG, async {
        while v.pull.peers() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the cut connection was noticed");
    v.good.send("whole").await.unwrap();
    assert_eq!(v.pull.next().await.unwrap(), "whole");
    assert_eq!(v.pull.stats().msgs_received, 1);
}

#[tokio::test]
async fn a_push_closes_a_peer_that_sends_it_anything() {
    let push = PushSocket::with_options(victim_options()).unwrap();
    let mut events = push.events();
    let bound = push.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut good = PullSocket::new();
    good.connect(&bound.to_string()).unwrap();
    let mut attacker = RawPeer::connect(&bound).await;
    attacker.handshake_as(SocketType::Pull).await;
    assert!(push.wait_for_peers(2, HANG).await);
    attacker
        .send_frame(&Frame::Message {
            payload: Bytes::from_static(b"back at you"),
        })
        .await;
    let (code, text) = closed_with(attacker).await;
    assert_eq!(code, Reason::ProtocolError);
    assert!(text.contains("PUSH socket receives nothing"), "{text}");
    misbehaved(&mut events).await;
    push.send("still served").await.unwrap();
    assert_eq!(good.next().await.unwrap(), "still served");
}

#[tokio::test]
async fn a_router_closes_a_peer_that_sends_replies() {
    let mut router = RouterSocket::with_options(victim_options()).unwrap();
    let mut events = router.events();
    let bound = router.bind("tcp://127.0.0.1:0").await.unwrap();
    let good = msg_socket::DealerSocket::new();
    good.connect(&bound.to_string()).unwrap();
    let mut attacker = RawPeer::connect(&bound).await;
    attacker.handshake_as(SocketType::Dealer).await;
    assert!(router.wait_for_peers(2, HANG).await);
    attacker
        .send_frame(&Frame::Reply {
            id: 1,
            payload: Bytes::from_static(b"unasked"),
        })
        .await;
    let (code, text) = closed_with(attacker).await;
    assert_eq!(code, Reason::ProtocolError);
    assert!(text.contains("ROUTER"), "{text}");
    misbehaved(&mut events).await;
    good.send("still served").await.unwrap();
    let (route, message) = router.next().await.unwrap();
    assert_eq!(message, "still served");
    assert_eq!(route.identity(), good.identity());
    assert_eq!(router.peers(), 1);
}

#[tokio::test]
async fn a_pair_refuses_a_second_peer_in_the_handshake_and_closes_a_bad_first_one() {
    let mut pair = PairSocket::with_options(victim_options()).unwrap();
    let mut events = pair.events();
    let bound = pair.bind("tcp://127.0.0.1:0").await.unwrap();

    // Its one peer sends a frame of another pattern, and is closed.
    let mut first = RawPeer::connect(&bound).await;
    first.handshake_as(SocketType::Pair).await;
    first
        .send_frame(&Frame::Request {
            id: 1,
            payload: Bytes::from_static(b"?"),
        })
        .await;
    let (code, text) = closed_with(first).await;
    assert_eq!(code, Reason::ProtocolError);
    assert!(text.contains("PAIR"), "{text}");
    misbehaved(&mut events).await;

    // The place is free again: a good peer takes it...
    let peer = PairSocket::new();
    peer.connect(&bound.to_string()).unwrap();
    peer.send("hello").await.unwrap();
    assert_eq!(pair.next().await.unwrap(), "hello");
    // ...and the next is turned away in its handshake, with the reason.
    let mut second = RawPeer::connect(&bound).await;
    let hello = Hello::new(SocketType::Pair, Bytes::from_static(b"second"), None);
    let Answer::Reject { code, text, .. } = second.hello(&hello).await else {
        panic!("a second peer was accepted");
    };
    assert_eq!(code, Reason::Occupied);
    assert!(text.contains("one peer already"), "{text}");
    assert_eq!(pair.refused(), 1);
    pair.send("still yours").await.unwrap();
    let mut peer = peer;
    assert_eq!(peer.next().await.unwrap(), "still yours");
}
