//! Repeated identities on PEER and ROUTER: the newer connection of the same
//! principal wins; one of another principal is refused, in the handshake or
//! after it, and takes nothing meanwhile.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use msg_transport::PeerAddr;
use msg_wire::{Frame, Reason, SocketType};

use crate::auth::Principal;
use crate::driver::conn::PeerInfo;
use crate::options::SocketOptions;
use crate::peer::PeerEvent;
use crate::proto::Protocol;
use crate::proto::conns::ConnId;
use crate::proto::identities::IDENTITY_IN_USE;
use crate::proto::peer::PeerProto;
use crate::proto::router::RouterProto;

/// A connection `conn` announcing `identity`, authenticated with `token`
/// (`None`: anonymous).
fn candidate(
    conn: ConnId,
    identity: &str,
    token: Option<&str>,
    socket_type: SocketType,
) -> PeerInfo {
    PeerInfo {
        identity: Bytes::from(identity.to_owned()),
        addr: PeerAddr::Inproc {
            name: "identities".into(),
            conn_id: conn,
        },
        socket_type,
        conn_id: conn,
        certificates: None,
        principal: Principal::new(None, false, token.map(|t| Bytes::from(t.to_owned()))),
    }
}

fn up<P: Protocol>(proto: &mut P, peer: PeerInfo) {
    proto.handle_conn_up(Instant::now(), Arc::new(peer));
}

/// The reason `conn` is being closed for, if it is.
fn closing<P: Protocol>(proto: &mut P, conn: ConnId) -> Option<(Reason, String)> {
    let mut found = None;
    while let Some(close) = proto.conns_mut().poll_close() {
        if close.conn == conn {
            found = Some((close.code, close.text));
        }
    }
    found
}

fn data(n: u8) -> Frame {
    Frame::Data {
        seq: u64::from(n),
        payload: Bytes::from(vec![n]),
    }
}

fn peer_proto() -> PeerProto {
    PeerProto::new(&SocketOptions::new())
}

#[test]
fn peer_refuses_another_principal_in_the_handshake_and_keeps_the_holder() {
    let mut p = peer_proto();
    up(
        &mut p,
        candidate(1, "alice", Some("alice-token"), SocketType::Peer),
    );
    let forged = candidate(2, "alice", Some("mallory-token"), SocketType::Peer);
    assert_eq!(
        p.admit(&forged),
        Err((Reason::IdentityInUse, IDENTITY_IN_USE))
    );
    let anonymous = candidate(3, "alice", None, SocketType::Peer);
    assert_eq!(
        p.admit(&anonymous),
        Err((Reason::IdentityInUse, IDENTITY_IN_USE)),
        "no credential is another principal too"
    );
    assert_eq!(p.stats().identity_refusals, 2);
    assert_eq!(p.route(b"alice"), Some(1));
    // The same principal is admitted (it will replace the old connection),
    // and so is any other identity.
    let same = candidate(4, "alice", Some("alice-token"), SocketType::Peer);
    assert_eq!(p.admit(&same), Ok(()));
    assert_eq!(
        p.admit(&candidate(5, "bob", None, SocketType::Peer)),
        Ok(())
    );
}

#[test]
fn peer_closes_another_principal_that_came_up_anyway_and_delivers_nothing_of_it() {
    let mut p = peer_proto();
    up(
        &mut p,
        candidate(1, "alice", Some("alice-token"), SocketType::Peer),
    );
    assert!(matches!(p.poll_event(), Some(PeerEvent::Up(..))));
    // Two handshakes at once both passed `admit`: the later one is refused
    // when it comes up.
    up(
        &mut p,
        candidate(2, "alice", Some("mallory-token"), SocketType::Peer),
    );
    assert_eq!(
        closing(&mut p, 2),
        Some((Reason::IdentityInUse, IDENTITY_IN_USE.to_owned()))
    );
    assert_eq!(p.route(b"alice"), Some(1), "the holder keeps its route");
    assert_eq!(p.poll_event(), None, "no Up for the refused connection");
    assert_eq!(p.handle_frame(Instant::now(), 2, data(7)), Ok(()));
    assert_eq!(p.poll_event(), None, "its frames are dropped");
    p.handle_frame(Instant::now(), 1, data(8)).unwrap();
    assert_eq!(
        p.poll_event(),
        Some(PeerEvent::Frame(Bytes::from("alice"), data(8)))
    );
    // Its end is no Down for the identity, which the holder still has.
    p.handle_conn_down(Instant::now(), 2);
    assert_eq!(p.poll_event(), None);
    assert_eq!(p.route(b"alice"), Some(1));
    assert_eq!(p.stats().identity_refusals, 1);
    // Once the holder is gone, the identity is free again.
    p.handle_conn_down(Instant::now(), 1);
    assert_eq!(p.poll_event(), Some(PeerEvent::Down(Bytes::from("alice"))));
    assert_eq!(
        p.admit(&candidate(
            3,
            "alice",
            Some("mallory-token"),
            SocketType::Peer
        )),
        Ok(())
    );
}

#[test]
fn peer_same_principal_replaces_and_anonymous_peers_are_one_principal() {
    let mut p = peer_proto();
    up(&mut p, candidate(1, "alice", Some("t"), SocketType::Peer));
    up(&mut p, candidate(2, "alice", Some("t"), SocketType::Peer));
    assert_eq!(
        closing(&mut p, 1),
        Some((Reason::Normal, "replaced by a newer connection".to_owned()))
    );
    assert_eq!(p.route(b"alice"), Some(2));
    // Without authentication the newer connection wins, as it always did.
    up(&mut p, candidate(3, "bob", None, SocketType::Peer));
    assert_eq!(
        p.admit(&candidate(4, "bob", None, SocketType::Peer)),
        Ok(())
    );
    up(&mut p, candidate(4, "bob", None, SocketType::Peer));
    assert_eq!(p.route(b"bob"), Some(4));
    assert_eq!(p.stats().identity_refusals, 0);
}

#[test]
fn router_refuses_another_principal_and_drops_what_it_sends() {
    let mut r = RouterProto::new(&SocketOptions::new());
    up(
        &mut r,
        candidate(1, "worker", Some("w"), SocketType::Dealer),
    );
    assert_eq!(
        r.admit(&candidate(2, "worker", Some("x"), SocketType::Dealer)),
        Err((Reason::IdentityInUse, IDENTITY_IN_USE))
    );
    up(
        &mut r,
        candidate(3, "worker", Some("x"), SocketType::Dealer),
    );
    assert_eq!(
        closing(&mut r, 3),
        Some((Reason::IdentityInUse, IDENTITY_IN_USE.to_owned()))
    );
    let message = |text: &'static str| Frame::Message {
        payload: Bytes::from_static(text.as_bytes()),
    };
    r.handle_frame(Instant::now(), 3, message("forged"))
        .unwrap();
    r.handle_frame(Instant::now(), 1, message("real")).unwrap();
    let (route, got) = r.take().expect("the holder's message");
    assert_eq!(route.identity(), &Bytes::from("worker"));
    assert_eq!(got.first(), &Bytes::from("real"));
    assert!(r.take().is_none(), "nothing from the refused connection");
    assert_eq!(r.stats().identity_refusals, 2);
    // The same principal replaces the holder.
    up(
        &mut r,
        candidate(4, "worker", Some("w"), SocketType::Dealer),
    );
    assert_eq!(
        closing(&mut r, 1),
        Some((Reason::Normal, "replaced by a newer connection".to_owned()))
    );
}
