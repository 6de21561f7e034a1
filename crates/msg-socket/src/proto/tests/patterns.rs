//! PUSH/PULL, DEALER/ROUTER and PAIR on the harness: load balancing, fair
//! queueing, parking, routing errors, the one peer of a PAIR, and
//! multipart messages arriving whole.

use bytes::Bytes;
use msg_wire::{Compression, Frame, FrameCodec, Reason, SocketType};

use crate::message::{Encoded, Message};
use crate::options::SocketOptions;
use crate::proto::Protocol;
use crate::proto::dealer::DealerProto;
use crate::proto::harness::{Harness, NodeId, peer};
use crate::proto::outbox::Offer;
use crate::proto::pair::{OCCUPIED, PairProto};
use crate::proto::pipeline::{PullProto, PushProto};
use crate::proto::rep::RepProto;
use crate::proto::req::ReqProto;
use crate::proto::router::{RouteStatus, RouterProto};
use crate::router::Route;

fn options(send_hwm: usize, recv_hwm: usize) -> SocketOptions {
    let mut o = SocketOptions::new();
    o.send_hwm(send_hwm).recv_hwm(recv_hwm);
    o
}

fn one_way(message: impl Into<Message>) -> Encoded {
    message
        .into()
        .encode(&FrameCodec::new(), Compression::None, |payload| {
            Frame::Message { payload }
        })
        .expect("encodable")
}

fn request(message: impl Into<Message>) -> Encoded {
    message
        .into()
        .encode(&FrameCodec::new(), Compression::None, |payload| {
            Frame::Request { id: 0, payload }
        })
        .expect("encodable")
}

fn text(m: &Message) -> String {
    m.iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join("|")
}

fn pulled(h: &mut Harness, node: NodeId) -> Vec<String> {
    let pull = h.node::<PullProto>(node);
    std::iter::from_fn(|| pull.take())
        .map(|m| text(&m))
        .collect()
}

#[test]
fn push_goes_round_robin_and_skips_a_peer_at_its_mark() {
    let mut h = Harness::new();
    let push = h.add(PushProto::new(&options(2, 100)));
    let a = h.add(PullProto::new(&options(100, 100)));
    let b = h.add(PullProto::new(&options(100, 100)));
    h.connect(push, a);
    let link_b = h.connect(push, b);
    h.run();
    for i in 0..4 {
        assert_eq!(
            h.node::<PushProto>(push).send(one_way(i.to_string())),
            Offer::Taken
        );
        h.run();
    }
    assert_eq!(pulled(&mut h, a), ["0", "2"]);
    assert_eq!(pulled(&mut h, b), ["1", "3"]);

    // b stops reading: two frames fill its queue, then it is skipped.
    h.stall(link_b, b, true);
    for i in 0..6 {
        assert_eq!(
            h.node::<PushProto>(push).send(one_way(i.to_string())),
            Offer::Taken
        );
        h.run();
    }
    assert_eq!(
        pulled(&mut h, a),
        ["0", "2", "4", "5"],
        "b took 1 and 3, then was full"
    );
    h.stall(link_b, b, false);
    h.run();
    assert_eq!(pulled(&mut h, b), ["1", "3"]);
}

#[test]
fn push_is_full_when_every_peer_is_and_takes_again_when_room_opens() {
    let mut h = Harness::new();
    let push = h.add(PushProto::new(&options(2, 100)));
    let a = h.add(PullProto::new(&options(100, 100)));
    let link = h.connect(push, a);
    h.run();
    h.stall(link, a, true);
    let p = h.node::<PushProto>(push);
    assert_eq!(p.send(one_way("1")), Offer::Taken);
    assert_eq!(p.send(one_way("2")), Offer::Taken);
    assert!(
        matches!(p.send(one_way("3")), Offer::Full(_)),
        "nothing dropped, nothing queued"
    );
    h.stall(link, a, false);
    h.run();
    assert_eq!(h.node::<PushProto>(push).send(one_way("3")), Offer::Taken);
    h.run();
    assert_eq!(pulled(&mut h, a), ["1", "2", "3"]);
}

#[test]
fn push_parks_messages_until_the_first_peer_up_to_the_mark() {
    let mut h = Harness::new();
    let push = h.add(PushProto::new(&options(3, 100)));
    let a = h.add(PullProto::new(&options(100, 100)));
    let p = h.node::<PushProto>(push);
    for i in 0..3 {
        assert_eq!(p.send(one_way(i.to_string())), Offer::Taken);
    }
    assert!(matches!(p.send(one_way("3")), Offer::Full(_)));
    assert_eq!(p.parked().0, 3);
    h.connect(push, a);
    h.run();
    assert_eq!(h.node::<PushProto>(push).parked(), (0, 0));
    assert_eq!(h.node::<PushProto>(push).send(one_way("3")), Offer::Taken);
    h.run();
    assert_eq!(
        pulled(&mut h, a),
        ["0", "1", "2", "3"],
        "in order, parked first"
    );
}

#[test]
fn pull_takes_from_its_pushers_in_turn_so_a_busy_one_cannot_starve_the_rest() {
    let mut h = Harness::new();
    let pull = h.add(PullProto::new(&options(100, 1000)));
    let busy = h.add(PushProto::new(&options(1000, 100)));
    let quiet = h.add(PushProto::new(&options(1000, 100)));
    h.connect(busy, pull);
    h.connect(quiet, pull);
    h.run();
    for i in 0..50 {
        h.node::<PushProto>(busy).send(one_way(format!("b{i}")));
    }
    h.run();
    for i in 0..2 {
        h.node::<PushProto>(quiet).send(one_way(format!("q{i}")));
    }
    h.run();
    assert_eq!(h.node::<PullProto>(pull).pending(), 52);
    let got = pulled(&mut h, pull);
    // Everything from the busy pusher arrived first, yet the quiet one's
    // messages come second and fourth, not after all fifty.
    assert_eq!(&got[..5], ["b0", "q0", "b1", "q1", "b2"]);
    assert_eq!(got.len(), 52);
}

#[test]
fn pull_holds_back_only_the_connection_at_its_mark() {
    let mut h = Harness::new();
    let pull = h.add(PullProto::new(&options(100, 2)));
    let busy = h.add(PushProto::new(&options(1000, 100)));
    let quiet = h.add(PushProto::new(&options(1000, 100)));
    h.connect(busy, pull);
    h.connect(quiet, pull);
    h.run();
    for i in 0..10 {
        h.node::<PushProto>(busy).send(one_way(format!("b{i}")));
    }
    h.node::<PushProto>(quiet).send(one_way("q0"));
    h.run();
    assert_eq!(
        h.node::<PullProto>(pull).pending(),
        3,
        "two from busy, one from quiet"
    );
    let got = pulled(&mut h, pull);
    assert_eq!(got, ["b0", "q0", "b1"]);
    h.run();
    assert_eq!(
        pulled(&mut h, pull),
        ["b2", "b3"],
        "busy goes on as room opens"
    );
}

#[test]
fn a_multipart_message_arrives_whole_and_in_place() {
    let mut h = Harness::new();
    let push = h.add(PushProto::new(&options(100, 100)));
    let pull = h.add(PullProto::new(&options(100, 100)));
    h.connect(push, pull);
    h.run();
    let p = h.node::<PushProto>(push);
    p.send(one_way("before"));
    p.send(one_way(["a", "", "c"]));
    p.send(one_way("after"));
    h.run();
    assert_eq!(pulled(&mut h, pull), ["before", "a||c", "after"]);
}

#[test]
fn a_part_cut_off_by_a_lost_connection_is_never_delivered() {
    let mut h = Harness::new();
    let pull = h.add(PullProto::new(&options(100, 100)));
    let push = h.add(PushProto::new(&options(100, 100)));
    let link = h.connect(push, pull);
    h.run();
    // Only the first part reaches the puller before the cut.
    let parts = one_way(["first", "second"]);
    let conn = h.conn_of(link, push);
    let first = parts.head[0].clone();
    h.node::<PushProto>(push).conns_mut().push(conn, first);
    h.run();
    h.cut(link);
    h.run();
    assert!(pulled(&mut h, pull).is_empty());
}

#[test]
fn rep_and_req_take_multipart_requests_and_replies_whole() {
    let mut h = Harness::new();
    let rep = h.add(RepProto::new(&options(100, 100)));
    let dealer = h.add(DealerProto::new(&options(100, 100)));
    h.connect(dealer, rep);
    h.run();
    h.node::<DealerProto>(dealer)
        .send(request(["two", "parts"]));
    h.run();
    assert!(h.closed.is_empty(), "{:?}", h.closed);
    let got = h.node::<RepProto>(rep).poll_delivery().expect("request");
    assert_eq!(got.head, [Bytes::from_static(b"two")]);
    assert_eq!(got.payload, "parts");
    assert_eq!(got.size(), 8);

    // A REQ takes a multipart reply whole, through a ROUTER.
    let router = h.add(RouterProto::new(&options(100, 100)));
    let req = h.add(ReqProto::new(&options(100, 100)));
    h.connect(req, router);
    h.run();
    let now = h.now;
    let key = h.node::<ReqProto>(req).insert(
        now + std::time::Duration::from_secs(5),
        futures::task::noop_waker(),
    );
    let asked = request(["q1", "q2"]);
    h.node::<ReqProto>(req)
        .dispatch_parts(key, &asked.head, &asked.last);
    h.run();
    let (route, question) = router_take(&mut h, router).pop().expect("the request");
    assert_eq!(text(&question), "q1|q2");
    let (_, id) = route.request().expect("a REQ's route");
    let reply = Message::from_parts(["a", "b"])
        .encode(&FrameCodec::new(), Compression::None, |payload| {
            Frame::Reply { id, payload }
        })
        .unwrap();
    assert_eq!(
        h.node::<RouterProto>(router).send_to(&route, &reply),
        RouteStatus::Queued
    );
    h.run();
    let outcome = h
        .node::<ReqProto>(req)
        .poll_outcome(key, &futures::task::noop_waker());
    assert_eq!(text(&outcome.unwrap().unwrap()), "a|b");
    assert!(h.closed.is_empty(), "{:?}", h.closed);
}

#[test]
fn a_dealer_drives_a_rep_and_takes_the_replies_as_they_come() {
    let mut h = Harness::new();
    let dealer = h.add(DealerProto::new(&options(100, 100)));
    let rep = h.add(RepProto::new(&options(100, 100)));
    h.connect(dealer, rep);
    h.run();
    for q in ["a", "b", "c"] {
        assert_eq!(h.node::<DealerProto>(dealer).send(request(q)), Offer::Taken);
    }
    h.run();
    let r = h.node::<RepProto>(rep);
    let mut reqs = Vec::new();
    while let Some(req) = r.poll_delivery() {
        reqs.push(req);
    }
    // Answered in reverse: the dealer takes them as they come.
    for req in reqs.iter().rev() {
        let reply = FrameCodec::new()
            .encode_parts(
                &Frame::Reply {
                    id: req.id,
                    payload: [&req.payload[..], b"!"].concat().into(),
                },
                Compression::None,
            )
            .unwrap();
        h.node::<RepProto>(rep).reply(req.conn, &reply);
    }
    h.run();
    let d = h.node::<DealerProto>(dealer);
    let got: Vec<String> = std::iter::from_fn(|| d.take()).map(|m| text(&m)).collect();
    assert_eq!(got, ["c!", "b!", "a!"]);
}

fn router_take(h: &mut Harness, node: NodeId) -> Vec<(Route, Message)> {
    let r = h.node::<RouterProto>(node);
    std::iter::from_fn(|| r.take()).collect()
}

#[test]
fn a_router_answers_req_and_dealer_peers_by_route() {
    let mut h = Harness::new();
    let router = h.add(RouterProto::new(&options(100, 100)));
    let req = h.add(ReqProto::new(&options(100, 100)));
    let dealer = h.add(DealerProto::new(&options(100, 100)));
    h.connect(req, router);
    h.connect(dealer, router);
    h.run();
    let now = h.now;
    let key = h.node::<ReqProto>(req).insert(
        now + std::time::Duration::from_secs(5),
        futures::task::noop_waker(),
    );
    let frame = request("from req").last;
    h.node::<ReqProto>(req).dispatch(key, &frame);
    h.node::<DealerProto>(dealer)
        .send(request(["env", "from dealer"]));
    h.run();
    let got = router_take(&mut h, router);
    assert_eq!(got.len(), 2);
    for (route, message) in &got {
        let reply = message
            .clone()
            .encode(
                &FrameCodec::new(),
                Compression::None,
                |payload| match route.request() {
                    Some((_, id)) => Frame::Reply { id, payload },
                    None => Frame::Message { payload },
                },
            )
            .unwrap();
        // Only the REQ peer's route carries its request; the dealer's is
        // its identity alone, the same as one made by hand.
        let from_req = message == "from req";
        assert_eq!(route.is_request(), from_req, "{route:?}");
        if !from_req {
            assert_eq!(route, &Route::to(route.identity().clone()));
        }
        assert_eq!(
            h.node::<RouterProto>(router).send_to(route, &reply),
            RouteStatus::Queued
        );
    }
    // A REQ peer takes one answer per request: a second is refused, not
    // sent to be dropped. A DEALER takes any number.
    for (route, _) in &got {
        let again = h
            .node::<RouterProto>(router)
            .send_to(route, &one_way("again"));
        let want = if route.is_request() {
            RouteStatus::Answered
        } else {
            RouteStatus::Queued
        };
        assert_eq!(again, want, "{route:?}");
    }
    h.run();
    let outcome = h
        .node::<ReqProto>(req)
        .poll_outcome(key, &futures::task::noop_waker());
    assert_eq!(outcome.unwrap().unwrap(), "from req");
    let d = h.node::<DealerProto>(dealer);
    assert_eq!(text(&d.take().unwrap()), "env|from dealer");
    assert_eq!(text(&d.take().unwrap()), "again");
}

#[test]
fn a_router_says_why_it_cannot_route_and_queues_nothing() {
    let mut h = Harness::new();
    let router = h.add(RouterProto::new(&options(1, 100)));
    let req = h.add(ReqProto::new(&options(100, 100)));
    let dealer = h.add(DealerProto::new(&options(100, 100)));
    let req_link = h.connect(req, router);
    let dealer_link = h.connect(dealer, router);
    h.run();
    let req_id = Bytes::from(format!("node-{req}"));
    let dealer_id = Bytes::from(format!("node-{dealer}"));
    let msg = one_way("x");
    let r = h.node::<RouterProto>(router);
    assert_eq!(
        r.send_to(&Route::to("nobody"), &msg),
        RouteStatus::Unreachable
    );
    assert_eq!(
        r.send_to(&Route::to(req_id.clone()), &msg),
        RouteStatus::NotARequest
    );
    let stale = Route::new(req_id.clone(), Some((u64::MAX, 1)));
    assert_eq!(r.send_to(&stale, &msg), RouteStatus::Departed);

    // A dealer takes unprompted messages, up to its connection's mark.
    h.stall(dealer_link, dealer, true);
    let r = h.node::<RouterProto>(router);
    assert_eq!(
        r.send_to(&Route::to(dealer_id.clone()), &msg),
        RouteStatus::Queued
    );
    assert_eq!(
        r.send_to(&Route::to(dealer_id.clone()), &msg),
        RouteStatus::Full
    );

    h.cut(req_link);
    h.run();
    assert_eq!(
        h.node::<RouterProto>(router)
            .send_to(&Route::to(req_id), &msg),
        RouteStatus::Unreachable,
        "departed peers are unreachable"
    );
    assert_eq!(h.node::<RouterProto>(router).identities().count(), 1);
}

#[test]
fn route_bytes_round_trip_and_refuse_garbage() {
    for route in [
        Route::to("plain"),
        Route::new(Bytes::from_static(b"req"), Some((7, 9))),
        Route::to(Bytes::new()),
    ] {
        assert_eq!(Route::from_bytes(&route.to_bytes()), Some(route));
    }
    assert_eq!(Route::from_bytes(&[]), None);
    assert_eq!(Route::from_bytes(&[2, 0]), None);
    assert_eq!(Route::from_bytes(&[1, 0, 0]), None);
}

#[test]
fn a_pair_keeps_its_one_peer_and_refuses_another_with_a_reason() {
    let mut h = Harness::new();
    let a = h.add(PairProto::new(&options(100, 100)));
    let b = h.add(PairProto::new(&options(100, 100)));
    let c = h.add(PairProto::new(&options(100, 100)));
    h.node::<PairProto>(a).send(one_way("parked"));
    h.connect(b, a);
    h.run();
    let second = h.connect(c, a);
    h.run();
    let closed = h.closed.last().expect("refused").clone();
    assert_eq!((closed.link, closed.by), (second, a));
    assert_eq!(closed.code, Reason::Occupied);
    assert_eq!(closed.text, OCCUPIED);
    assert_eq!(h.node::<PairProto>(a).refused, 1);
    // A server turns the next one away in its handshake already.
    assert_eq!(
        h.node::<PairProto>(a).admit(&peer(0, c, SocketType::Pair)),
        Err((Reason::Occupied, OCCUPIED))
    );
    assert_eq!(h.node::<PairProto>(a).refused, 2);
    assert_eq!(
        h.node::<PairProto>(c).admit(&peer(0, a, SocketType::Pair)),
        Ok(()),
        "c has no peer"
    );
    let got = h.node::<PairProto>(b).take().map(|m| text(&m));
    assert_eq!(got.as_deref(), Some("parked"));
    h.node::<PairProto>(b).send(one_way("back"));
    h.run();
    assert_eq!(text(&h.node::<PairProto>(a).take().unwrap()), "back");
}
