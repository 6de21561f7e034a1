//! The pattern state machines on the harness: every protocol decision,
//! tested without a socket, on a virtual clock.

use bytes::Bytes;
use msg_wire::{Compression, Frame, FrameCodec, Reason};

use std::task::Waker;
use std::time::{Duration, Instant};

use crate::error::ReqError;
use crate::options::SocketOptions;
use crate::peer::PeerEvent;
use crate::proto::harness::{Harness, NodeId};
use crate::proto::peer::{PeerProto, SendStatus};
use crate::proto::pending::Key;
use crate::proto::publish::{MAX_SUBSCRIPTIONS, PubProto};
use crate::proto::rep::{RepProto, ReplyStatus};
use crate::proto::req::{Dispatch, ReqProto};
use crate::proto::subscribe::SubProto;
use crate::proto::{Protocol, Wake};
use crate::subscribe::PubMessage;

fn options(send_hwm: usize, recv_hwm: usize) -> SocketOptions {
    let mut o = SocketOptions::new();
    o.send_hwm(send_hwm).recv_hwm(recv_hwm);
    o
}

fn publisher(h: &mut Harness, send_hwm: usize) -> NodeId {
    h.add(PubProto::new(&options(send_hwm, 1000)))
}

fn subscriber(h: &mut Harness, recv_hwm: usize, prefixes: &[&'static str]) -> NodeId {
    let mut sub = SubProto::new(&options(1000, recv_hwm));
    for p in prefixes {
        sub.subscribe(Bytes::from_static(p.as_bytes()));
    }
    h.add(sub)
}

fn publish(h: &mut Harness, node: NodeId, topic: &'static str, payload: &str) -> usize {
    let frame = FrameCodec::new()
        .encode_parts(
            &Frame::Publish {
                topic: Bytes::from_static(topic.as_bytes()),
                seq: 0,
                payload: Bytes::copy_from_slice(payload.as_bytes()),
            },
            Compression::None,
        )
        .expect("encodable");
    h.node::<PubProto>(node).publish(topic.as_bytes(), &frame)
}

fn received(h: &mut Harness, node: NodeId) -> Vec<PubMessage> {
    let sub = h.node::<SubProto>(node);
    std::iter::from_fn(|| sub.poll_delivery()).collect()
}

fn payloads(msgs: &[PubMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(m.payload()).into_owned())
        .collect()
}

fn seqs(msgs: &[PubMessage]) -> Vec<u64> {
    msgs.iter().map(PubMessage::seq).collect()
}

#[test]
fn the_publisher_filters_by_prefix() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 100, &["a."]);
    h.connect(s, p);
    h.run();
    assert_eq!(h.node::<PubProto>(p).subscribers(), 1);
    assert_eq!(publish(&mut h, p, "a.1", "yes"), 1);
    assert_eq!(
        publish(&mut h, p, "b.1", "no"),
        0,
        "filtered at the publisher"
    );
    h.run();
    let got = received(&mut h, s);
    assert_eq!(payloads(&got), ["yes"]);
    assert_eq!(got[0].topic(), "a.1");
}

#[test]
fn subscriptions_are_counted_and_publishers_hear_only_the_first_and_last() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 100, &["a", "a"]);
    h.connect(s, p);
    h.run();
    h.node::<SubProto>(s).unsubscribe(Bytes::from_static(b"a"));
    h.run();
    assert_eq!(publish(&mut h, p, "a", "1"), 1, "one subscription left");
    h.node::<SubProto>(s).unsubscribe(Bytes::from_static(b"a"));
    h.run();
    assert_eq!(
        publish(&mut h, p, "a", "2"),
        0,
        "the last unsubscribe reached it"
    );
    assert_eq!(h.node::<PubProto>(p).subscribers(), 0);
}

#[test]
fn a_subscription_made_while_connected_reaches_the_publisher_in_order() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 100, &[]);
    h.connect(s, p);
    h.run();
    let sub = h.node::<SubProto>(s);
    sub.subscribe(Bytes::from_static(b"x"));
    sub.unsubscribe(Bytes::from_static(b"x"));
    sub.subscribe(Bytes::from_static(b"y"));
    h.run();
    assert_eq!(publish(&mut h, p, "x", "1"), 0);
    assert_eq!(publish(&mut h, p, "y", "2"), 1);
}

#[test]
fn subscriptions_are_sent_again_on_every_new_connection() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 100, &["t"]);
    let first = h.connect(s, p);
    h.run();
    h.cut(first);
    // A publisher that restarted knows nothing of us: a fresh node.
    let p2 = publisher(&mut h, 100);
    // Whichever side hears of the connection first.
    h.connect_ordered(s, p2, true);
    h.run();
    assert_eq!(h.node::<PubProto>(p2).subscribers(), 1);
    assert_eq!(publish(&mut h, p2, "t", "again"), 1);
    h.run();
    assert_eq!(payloads(&received(&mut h, s)), ["again"]);
}

#[test]
fn sequence_numbers_are_per_subscriber_and_start_again_on_a_new_connection() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let a = subscriber(&mut h, 100, &["a"]);
    let all = subscriber(&mut h, 100, &[""]);
    let link_a = h.connect(a, p);
    h.connect(all, p);
    h.run();
    publish(&mut h, p, "b", "1");
    publish(&mut h, p, "a", "2");
    publish(&mut h, p, "a", "3");
    h.run();
    assert_eq!(
        seqs(&received(&mut h, a)),
        [1, 2],
        "only its own messages count"
    );
    assert_eq!(seqs(&received(&mut h, all)), [1, 2, 3]);
    h.cut(link_a);
    h.connect(a, p);
    h.run();
    publish(&mut h, p, "a", "4");
    h.run();
    assert_eq!(
        seqs(&received(&mut h, a)),
        [1],
        "a new connection counts from 1"
    );
    assert_eq!(h.node::<SubProto>(a).stats().gaps, 0);
}

#[test]
fn a_stalled_subscriber_loses_the_newest_past_the_mark_and_counts_the_gap() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 3);
    let slow = subscriber(&mut h, 100, &[""]);
    let fast = subscriber(&mut h, 100, &[""]);
    let slow_link = h.connect(slow, p);
    h.connect(fast, p);
    h.run();
    h.stall(slow_link, slow, true);
    let queued: Vec<usize> = (0..5)
        .map(|i| {
            let n = publish(&mut h, p, "t", &i.to_string());
            h.run();
            n
        })
        .collect();
    // The fast one takes every message; the slow one's queue holds three.
    assert_eq!(queued, [2, 2, 2, 1, 1]);
    assert_eq!(h.node::<PubProto>(p).stats().dropped_hwm, 2);
    h.run();
    assert_eq!(payloads(&received(&mut h, fast)), ["0", "1", "2", "3", "4"]);
    h.stall(slow_link, slow, false);
    h.run();
    publish(&mut h, p, "t", "5");
    h.run();
    let got = received(&mut h, slow);
    assert_eq!(seqs(&got), [1, 2, 3, 6], "4 and 5 were dropped for it");
    assert_eq!(h.node::<SubProto>(slow).stats().gaps, 2);
    assert_eq!(h.node::<SubProto>(fast).stats().gaps, 0);
}

#[test]
fn a_multipart_publication_reaches_each_subscriber_whole_or_not_at_all() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 4);
    let slow = subscriber(&mut h, 100, &[""]);
    let fast = subscriber(&mut h, 100, &[""]);
    let slow_link = h.connect(slow, p);
    h.connect(fast, p);
    h.run();
    h.stall(slow_link, slow, true);
    let queued: Vec<usize> = (0..3)
        .map(|i| {
            let encoded = crate::message::Message::from_parts([
                "a".to_owned(),
                "b".to_owned(),
                format!("c{i}"),
            ])
            .encode(&FrameCodec::new(), Compression::None, |payload| {
                Frame::Publish {
                    topic: Bytes::from_static(b"t"),
                    seq: 0,
                    payload,
                }
            })
            .unwrap();
            let n = h
                .node::<PubProto>(p)
                .publish_parts(b"t", &encoded.head, &encoded.last);
            h.run();
            n
        })
        .collect();
    // Three frames each: the slow queue (mark 4) takes two messages, then
    // none of the third, counted as one drop.
    assert_eq!(queued, [2, 2, 1]);
    assert_eq!(h.node::<PubProto>(p).stats().dropped_hwm, 1);
    let got = received(&mut h, fast);
    let whole: Vec<_> = got.iter().map(|m| m.message().into_parts()).collect();
    assert_eq!(whole.len(), 3);
    for (i, parts) in whole.iter().enumerate() {
        assert_eq!(
            parts,
            &[
                Bytes::from("a"),
                Bytes::from("b"),
                Bytes::from(format!("c{i}"))
            ]
        );
    }
    assert!(got.iter().all(|m| m.is_multipart() && m.topic() == "t"));
    h.stall(slow_link, slow, false);
    h.run();
    let got = received(&mut h, slow);
    assert_eq!(seqs(&got), [1, 2]);
    assert_eq!(got[1].payload(), "c1");
    assert_eq!(got[1].message().len(), 3);
}

#[test]
fn the_first_message_delivered_from_each_connection_is_marked() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 1, &[""]);
    let link = h.connect(s, p);
    h.run();
    publish(&mut h, p, "t", "0");
    publish(&mut h, p, "t", "dropped at the subscriber's mark");
    h.run();
    let got = received(&mut h, s);
    assert_eq!(
        got.iter().map(PubMessage::is_first).collect::<Vec<_>>(),
        [true]
    );
    publish(&mut h, p, "t", "2");
    h.run();
    assert!(!received(&mut h, s)[0].is_first());

    // One message of the old connection stays queued; a new connection's
    // first message finds the queue full and is dropped: the first one
    // delivered from it is the one marked.
    publish(&mut h, p, "t", "held");
    h.run();
    h.cut(link);
    h.run();
    h.connect(s, p);
    h.run();
    publish(&mut h, p, "t", "dropped at the mark");
    h.run();
    let got = received(&mut h, s);
    assert_eq!(payloads(&got), ["held"]);
    assert!(!got[0].is_first());
    publish(&mut h, p, "t", "y");
    h.run();
    let got = received(&mut h, s);
    assert_eq!(payloads(&got), ["y"]);
    assert_eq!((got[0].is_first(), got[0].seq()), (true, 2));
}

#[test]
fn the_subscriber_drops_the_newest_past_its_own_mark() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 2, &[""]);
    h.connect(s, p);
    h.run();
    for i in 0..4 {
        publish(&mut h, p, "t", &i.to_string());
    }
    h.run();
    let sub = h.node::<SubProto>(s);
    assert_eq!(sub.pending(), 2);
    assert_eq!(
        sub.poll_wake(),
        Wake {
            deliveries: true,
            ..Wake::default()
        }
    );
    let stats = sub.stats();
    assert_eq!(
        (stats.dropped_hwm, stats.gaps, stats.msgs_received),
        (2, 0, 4)
    );
    assert_eq!(payloads(&received(&mut h, s)), ["0", "1"]);
    // Room again: the next one is delivered, its number shows the loss.
    publish(&mut h, p, "t", "4");
    h.run();
    assert_eq!(seqs(&received(&mut h, s)), [5]);
}

#[test]
fn a_subscriber_over_the_subscription_limit_is_closed_and_others_carry_on() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let greedy = subscriber(&mut h, 100, &[]);
    let good = subscriber(&mut h, 100, &["t"]);
    let greedy_link = h.connect(greedy, p);
    h.connect(good, p);
    h.run();
    for i in 0..=MAX_SUBSCRIPTIONS {
        h.node::<SubProto>(greedy)
            .subscribe(Bytes::from(format!("p{i}")));
    }
    h.run();
    assert!(!h.is_up(greedy_link));
    let closed = &h.closed[0];
    assert_eq!((closed.by, closed.code), (p, Reason::Overloaded));
    assert_eq!(closed.text, "too many subscriptions");
    assert_eq!(publish(&mut h, p, "t", "still here"), 1);
    h.run();
    assert_eq!(payloads(&received(&mut h, good)), ["still here"]);
}

#[test]
fn subscriptions_too_large_in_bytes_close_the_connection() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 10_000);
    let greedy = subscriber(&mut h, 100, &[]);
    let link = h.connect(greedy, p);
    h.run();
    // 20 prefixes of 60,000 bytes: 1.2 MB, over the 1 MiB limit.
    for i in 0..20u8 {
        h.node::<SubProto>(greedy)
            .subscribe(Bytes::from(vec![b'a' + i; 60_000]));
    }
    h.run();
    assert!(!h.is_up(link));
    assert_eq!(h.closed[0].text, "subscriptions too large");
}

#[test]
fn wrong_frame_kinds_are_violations_on_both_sides() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 10);
    let s = subscriber(&mut h, 10, &[]);
    let link = h.connect(s, p);
    h.run();
    let now = h.now;
    let conn = h.conn_of(link, p);
    let data = Frame::Data {
        seq: 1,
        payload: Bytes::from_static(b"x"),
    };
    let refused = h.node::<PubProto>(p).handle_frame(now, conn, data.clone());
    assert_eq!(
        refused,
        Err((
            Reason::ProtocolError,
            "a PUB socket only accepts subscriptions"
        ))
    );
    let conn = h.conn_of(link, s);
    let refused = h.node::<SubProto>(s).handle_frame(now, conn, data);
    assert_eq!(
        refused,
        Err((
            Reason::ProtocolError,
            "a SUB socket only accepts publications"
        ))
    );
}

#[test]
fn latency_delays_delivery_by_the_link_time() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 100);
    let s = subscriber(&mut h, 100, &[""]);
    let link = h.connect(s, p);
    h.set_latency(link, std::time::Duration::from_millis(5));
    h.run();
    let start = h.now;
    publish(&mut h, p, "t", "x");
    h.settle();
    assert!(received(&mut h, s).is_empty(), "still on the wire");
    h.run();
    assert_eq!(h.now - start, std::time::Duration::from_millis(5));
    assert_eq!(payloads(&received(&mut h, s)), ["x"]);
}

// Request/reply.

fn requester(h: &mut Harness, send_hwm: usize) -> NodeId {
    h.add(ReqProto::new(&options(send_hwm, 1000)))
}

fn replier(h: &mut Harness, recv_hwm: usize) -> NodeId {
    h.add(RepProto::new(&options(1000, recv_hwm)))
}

fn encoded(frame: &Frame) -> msg_wire::EncodedFrame {
    FrameCodec::new()
        .encode_parts(frame, Compression::None)
        .expect("encodable")
}

/// Starts a request due `timeout` from now and tries to queue it.
fn start(h: &mut Harness, req: NodeId, payload: &str, timeout: Duration) -> (Key, Dispatch) {
    let due = h.now + timeout;
    let frame = encoded(&Frame::Request {
        id: 0,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    });
    let proto = h.node::<ReqProto>(req);
    let key = proto.insert(due, Waker::noop().clone());
    let dispatched = proto.dispatch(key, &frame);
    (key, dispatched)
}

/// Tries again to queue a request that was waiting.
fn retry(h: &mut Harness, req: NodeId, key: Key, payload: &str) -> Dispatch {
    let frame = encoded(&Frame::Request {
        id: 0,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    });
    h.node::<ReqProto>(req).dispatch(key, &frame)
}

/// How the request ended, if it did (errors by name: `ReqError` is not
/// comparable).
fn outcome(h: &mut Harness, req: NodeId, key: Key) -> Option<Result<Bytes, &'static str>> {
    let ended = h.node::<ReqProto>(req).poll_outcome(key, Waker::noop())?;
    Some(
        ended
            .map(|m| m.into_single().expect("a single-part reply"))
            .map_err(|e| match e {
                ReqError::Timeout => "timeout",
                ReqError::ConnectionLost => "connection lost",
                _ => "other",
            }),
    )
}

/// Answers every request waiting at `rep` with its payload and `suffix`;
/// returns the payloads it saw.
fn answer_all(h: &mut Harness, rep: NodeId, suffix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(incoming) = h.node::<RepProto>(rep).poll_delivery() {
        let text = String::from_utf8_lossy(&incoming.payload).into_owned();
        let reply = encoded(&Frame::Reply {
            id: incoming.id,
            payload: Bytes::from(format!("{text}{suffix}")),
        });
        let status = h.node::<RepProto>(rep).reply(incoming.conn, &reply);
        assert_eq!(status, ReplyStatus::Queued);
        seen.push(text);
    }
    seen
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn requests_spread_round_robin_and_replies_come_back_by_id() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let reps: Vec<NodeId> = (0..3).map(|_| replier(&mut h, 100)).collect();
    for &rep in &reps {
        h.connect(req, rep);
    }
    let keys: Vec<Key> = (0..6)
        .map(|i| {
            let (key, d) = start(&mut h, req, &format!("r{i}"), LONG);
            assert_eq!(d, Dispatch::Queued);
            key
        })
        .collect();
    h.run();
    let seen: Vec<Vec<String>> = reps
        .iter()
        .map(|&rep| answer_all(&mut h, rep, "!"))
        .collect();
    assert_eq!(seen, [["r0", "r3"], ["r1", "r4"], ["r2", "r5"]]);
    h.run();
    for (i, key) in keys.into_iter().enumerate() {
        let reply = outcome(&mut h, req, key).expect("ended").expect("a reply");
        assert_eq!(reply, format!("r{i}!"));
    }
    assert_eq!(h.node::<ReqProto>(req).stats().msgs_received, 6);
}

#[test]
fn round_robin_skips_a_connection_at_its_mark() {
    let mut h = Harness::new();
    let req = requester(&mut h, 1);
    let stuck = replier(&mut h, 100);
    let free = replier(&mut h, 100);
    let stuck_link = h.connect(req, stuck);
    h.connect(req, free);
    h.stall(stuck_link, stuck, true);
    for i in 0..4 {
        assert_eq!(start(&mut h, req, &i.to_string(), LONG).1, Dispatch::Queued);
        h.run();
    }
    assert_eq!(answer_all(&mut h, free, ""), ["1", "2", "3"]);
    assert_eq!(h.node::<RepProto>(stuck).pending(), 0);
}

#[test]
fn a_request_waits_for_a_connection_then_goes_out() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let rep = replier(&mut h, 100);
    let (key, d) = start(&mut h, req, "early", LONG);
    assert_eq!(d, Dispatch::Waiting);
    h.advance(Duration::from_secs(5));
    assert_eq!(outcome(&mut h, req, key), None, "still waiting, not failed");
    h.connect(req, rep);
    assert_eq!(retry(&mut h, req, key, "early"), Dispatch::Queued);
    h.run();
    answer_all(&mut h, rep, " reply");
    h.run();
    assert_eq!(
        outcome(&mut h, req, key),
        Some(Ok(Bytes::from("early reply")))
    );
}

#[test]
fn a_deadline_holds_with_or_without_a_connection() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let rep = replier(&mut h, 100);
    let (waiting, _) = start(&mut h, req, "no conn", Duration::from_secs(2));
    h.connect(req, rep);
    let (sent, d) = start(&mut h, req, "unanswered", Duration::from_secs(3));
    assert_eq!(d, Dispatch::Queued);
    let start_time = h.now;
    h.advance(Duration::from_millis(1999));
    assert_eq!(outcome(&mut h, req, waiting), None);
    h.advance(Duration::from_millis(1));
    assert_eq!(outcome(&mut h, req, waiting), Some(Err("timeout")));
    assert_eq!(retry(&mut h, req, waiting, "x"), Dispatch::Ended);
    assert_eq!(outcome(&mut h, req, sent), None);
    h.advance(Duration::from_secs(1));
    assert_eq!(outcome(&mut h, req, sent), Some(Err("timeout")));
    assert_eq!(h.now - start_time, Duration::from_secs(3));
    // A reply after the deadline finds nothing.
    answer_all(&mut h, rep, "");
    h.run();
    assert_eq!(h.node::<ReqProto>(req).poll_timeout(), None);
}

#[test]
fn a_lost_connection_fails_its_requests_and_resends_none() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let a = replier(&mut h, 100);
    let b = replier(&mut h, 100);
    let link_a = h.connect(req, a);
    h.connect(req, b);
    let (on_a, _) = start(&mut h, req, "to a", LONG);
    let (on_b, _) = start(&mut h, req, "to b", LONG);
    h.run();
    h.cut(link_a);
    assert_eq!(outcome(&mut h, req, on_a), Some(Err("connection lost")));
    assert_eq!(
        outcome(&mut h, req, on_b),
        None,
        "the other connection is fine"
    );
    answer_all(&mut h, b, "");
    h.run();
    assert_eq!(outcome(&mut h, req, on_b), Some(Ok(Bytes::from("to b"))));
    // Nothing went to b twice: a's request was not re-sent.
    assert_eq!(h.node::<RepProto>(b).stats().msgs_received, 1);
}

#[test]
fn a_reply_for_a_cancelled_request_does_not_reach_the_request_in_its_slot() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let rep = replier(&mut h, 100);
    h.connect(req, rep);
    let (first, _) = start(&mut h, req, "first", LONG);
    h.run();
    h.node::<ReqProto>(req).cancel(first);
    // The next request takes the freed slot, under a new generation.
    let (second, _) = start(&mut h, req, "second", LONG);
    h.run();
    assert_eq!(answer_all(&mut h, rep, "!"), ["first", "second"]);
    h.run();
    assert_eq!(
        outcome(&mut h, req, second),
        Some(Ok(Bytes::from("second!")))
    );
}

#[test]
fn a_reply_on_another_connection_is_ignored() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let a = replier(&mut h, 100);
    let b = replier(&mut h, 100);
    h.connect(req, a);
    let link_b = h.connect(req, b);
    let (key, _) = start(&mut h, req, "to a", LONG);
    h.run();
    // b answers with the id of a's request.
    let now = h.now;
    let conn = h.conn_of(link_b, req);
    let forged = Frame::Reply {
        id: key.id(),
        payload: Bytes::from_static(b"forged"),
    };
    h.node::<ReqProto>(req)
        .handle_frame(now, conn, forged)
        .expect("not a violation");
    assert_eq!(outcome(&mut h, req, key), None);
    answer_all(&mut h, a, "");
    h.run();
    assert_eq!(outcome(&mut h, req, key), Some(Ok(Bytes::from("to a"))));
}

#[test]
fn rep_holds_back_connections_while_its_queue_is_full() {
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let rep = replier(&mut h, 2);
    let link = h.connect(req, rep);
    for i in 0..2 {
        start(&mut h, req, &i.to_string(), LONG);
    }
    h.run();
    let conn = h.conn_of(link, rep);
    let proto = h.node::<RepProto>(rep);
    assert_eq!(proto.pending(), 2);
    assert!(!proto.can_read(conn, None), "full: read no more");
    assert!(!proto.can_read(conn, Some(1)));
    let _ = proto.poll_wake();
    assert!(proto.poll_delivery().is_some());
    assert!(proto.poll_wake().readable, "room: held-back readers go on");
    assert!(proto.can_read(conn, Some(1)));
}

#[test]
fn rep_bytes_mark_admits_one_large_request_into_an_empty_queue() {
    let mut o = options(1000, 1000);
    o.recv_hwm_bytes(100);
    let mut h = Harness::new();
    let req = requester(&mut h, 100);
    let rep = h.add(RepProto::new(&o));
    let link = h.connect(req, rep);
    let conn = h.conn_of(link, rep);
    let proto = h.node::<RepProto>(rep);
    assert!(proto.can_read(conn, Some(5000)), "empty: anything fits");
    start(&mut h, req, &"x".repeat(60), LONG);
    h.run();
    let proto = h.node::<RepProto>(rep);
    assert!(proto.can_read(conn, Some(40)));
    assert!(!proto.can_read(conn, Some(41)), "60 + 41 > 100");
}

#[test]
fn a_reply_goes_back_on_its_own_connection_and_fails_once_it_is_gone() {
    let mut h = Harness::new();
    let one = requester(&mut h, 100);
    let two = requester(&mut h, 100);
    let rep = replier(&mut h, 100);
    let link_one = h.connect(one, rep);
    h.connect(two, rep);
    let (k1, _) = start(&mut h, one, "from one", LONG);
    let (k2, _) = start(&mut h, two, "from two", LONG);
    h.run();
    let first = h.node::<RepProto>(rep).poll_delivery().expect("a request");
    let second = h.node::<RepProto>(rep).poll_delivery().expect("a request");
    // Answered in the other order.
    for incoming in [&second, &first] {
        let reply = encoded(&Frame::Reply {
            id: incoming.id,
            payload: incoming.payload.clone(),
        });
        assert_eq!(
            h.node::<RepProto>(rep).reply(incoming.conn, &reply),
            ReplyStatus::Queued
        );
    }
    h.run();
    assert_eq!(outcome(&mut h, one, k1), Some(Ok(Bytes::from("from one"))));
    assert_eq!(outcome(&mut h, two, k2), Some(Ok(Bytes::from("from two"))));
    h.cut(link_one);
    let reply = encoded(&Frame::Reply {
        id: first.id,
        payload: Bytes::new(),
    });
    assert_eq!(
        h.node::<RepProto>(rep).reply(first.conn, &reply),
        ReplyStatus::Gone
    );
}

#[test]
fn req_and_rep_refuse_frames_of_other_patterns() {
    let mut h = Harness::new();
    let req = requester(&mut h, 10);
    let rep = replier(&mut h, 10);
    let link = h.connect(req, rep);
    let now = h.now;
    let publish = Frame::Publish {
        topic: Bytes::new(),
        seq: 1,
        payload: Bytes::new(),
    };
    let conn = h.conn_of(link, req);
    assert_eq!(
        h.node::<ReqProto>(req)
            .handle_frame(now, conn, publish.clone()),
        Err((Reason::ProtocolError, "a REQ socket only accepts replies"))
    );
    let conn = h.conn_of(link, rep);
    assert_eq!(
        h.node::<RepProto>(rep).handle_frame(now, conn, publish),
        Err((Reason::ProtocolError, "a REP socket only accepts requests"))
    );
}

#[test]
fn the_harness_clock_only_moves_when_told() {
    let mut h = Harness::new();
    let req = requester(&mut h, 10);
    let t0: Instant = h.now;
    start(&mut h, req, "x", LONG);
    h.run();
    assert_eq!(h.now, t0, "run() waits for no deadline");
}

// PEER.

fn peer_node(h: &mut Harness, recv_hwm: usize) -> NodeId {
    h.add(PeerProto::new(&options(1000, recv_hwm)))
}

fn events(h: &mut Harness, node: NodeId) -> Vec<PeerEvent> {
    let proto = h.node::<PeerProto>(node);
    std::iter::from_fn(|| proto.poll_event()).collect()
}

fn data(seq: u64) -> Frame {
    Frame::Data {
        seq,
        payload: Bytes::from(format!("d{seq}")),
    }
}

fn send_to(h: &mut Harness, from: NodeId, identity: &str, frame: &Frame) -> SendStatus {
    let proto = h.node::<PeerProto>(from);
    let Some(conn) = proto.route(identity.as_bytes()) else {
        return SendStatus::Gone;
    };
    proto.send(conn, &encoded(frame), 1)
}

#[test]
fn peers_route_by_identity_and_see_up_frames_down_in_order() {
    let mut h = Harness::new();
    let a = peer_node(&mut h, 100);
    let b = peer_node(&mut h, 100);
    let link = h.connect(a, b);
    // The harness names node n "node-n".
    assert_eq!(send_to(&mut h, a, "node-1", &data(1)), SendStatus::Queued);
    assert_eq!(send_to(&mut h, a, "node-7", &data(2)), SendStatus::Gone);
    h.run();
    h.cut(link);
    let got = events(&mut h, b);
    assert!(matches!(&got[0], PeerEvent::Up(id, _) if id == "node-0"));
    assert_eq!(got[1], PeerEvent::Frame(Bytes::from("node-0"), data(1)));
    assert_eq!(got[2], PeerEvent::Down(Bytes::from("node-0")));
    assert_eq!(got.len(), 3);
}

#[test]
fn the_newer_connection_wins_and_the_old_one_is_closed() {
    let mut h = Harness::new();
    let server = peer_node(&mut h, 100);
    let client = peer_node(&mut h, 100);
    let old = h.connect(client, server);
    h.run();
    // Frames the old connection carries once it is replaced are dropped.
    let new = h.connect(client, server);
    h.run();
    assert!(!h.is_up(old), "the server closed the replaced connection");
    assert!(h.is_up(new));
    let closed = &h.closed[0];
    assert_eq!((closed.by, closed.code), (server, Reason::Normal));
    assert_eq!(closed.text, "replaced by a newer connection");
    let got = events(&mut h, server);
    let ups = got
        .iter()
        .filter(|e| matches!(e, PeerEvent::Up(..)))
        .count();
    assert_eq!(ups, 2);
    assert!(
        !got.iter().any(|e| matches!(e, PeerEvent::Down(_))),
        "the identity never went down: {got:?}"
    );
    assert_eq!(
        send_to(&mut h, server, "node-1", &data(5)),
        SendStatus::Queued
    );
    h.run();
    let at_client: Vec<PeerEvent> = events(&mut h, client)
        .into_iter()
        .filter(|e| matches!(e, PeerEvent::Frame(..)))
        .collect();
    assert_eq!(
        at_client,
        [PeerEvent::Frame(Bytes::from("node-0"), data(5))]
    );
}

#[test]
fn peer_holds_back_connections_while_its_queue_is_full_and_loses_nothing() {
    let mut h = Harness::new();
    let a = peer_node(&mut h, 100);
    let b = peer_node(&mut h, 2);
    let link = h.connect(a, b);
    h.run();
    let conn = h.conn_of(link, b);
    let _ = events(&mut h, b);
    for seq in 1..=2 {
        send_to(&mut h, a, "node-1", &data(seq));
    }
    h.run();
    let proto = h.node::<PeerProto>(b);
    assert!(!proto.can_read(conn, Some(2)), "two frames waiting: full");
    assert!(proto.poll_event().is_some());
    assert!(proto.poll_wake().readable);
    assert!(proto.can_read(conn, Some(2)));
    // Up and Down never wait.
    h.cut(link);
    let got = events(&mut h, b);
    assert_eq!(got.last(), Some(&PeerEvent::Down(Bytes::from("node-0"))));
}

#[test]
fn a_peer_socket_needs_a_non_empty_identity_and_refuses_other_frames() {
    let mut o = SocketOptions::new();
    o.identity(Bytes::new());
    assert!(PeerProto::check(&o).is_err());
    o.identity("x");
    assert!(PeerProto::check(&o).is_ok());
    let mut h = Harness::new();
    let a = peer_node(&mut h, 10);
    let b = peer_node(&mut h, 10);
    let link = h.connect(a, b);
    let (now, conn) = (h.now, h.conn_of(link, b));
    assert_eq!(
        h.node::<PeerProto>(b)
            .handle_frame(now, conn, Frame::Ping { nonce: 1 }),
        Err((
            Reason::ProtocolError,
            "a PEER socket only accepts data and ack frames"
        ))
    );
}

#[test]
fn a_publisher_whose_numbers_do_not_go_up_is_cut() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 10);
    let s = subscriber(&mut h, 10, &[""]);
    let link = h.connect(s, p);
    h.run();
    let (now, conn) = (h.now, h.conn_of(link, s));
    let publication = |seq| Frame::Publish {
        topic: Bytes::from_static(b"t"),
        seq,
        payload: Bytes::from_static(b"x"),
    };
    let sub = h.node::<SubProto>(s);
    assert!(
        sub.handle_frame(now, conn, publication(0)).is_err(),
        "numbers start at 1"
    );
    assert!(sub.handle_frame(now, conn, publication(5)).is_ok());
    assert_eq!(
        sub.handle_frame(now, conn, publication(5)),
        Err((
            Reason::ProtocolError,
            "publication sequence numbers must go up"
        ))
    );
    assert_eq!(seqs(&received(&mut h, s)), [5]);
}

#[test]
fn huge_jumps_in_sequence_numbers_saturate_the_gap_count() {
    let mut h = Harness::new();
    let p = publisher(&mut h, 10);
    let s = subscriber(&mut h, 10, &[""]);
    // Each connection numbers from 1 again, so two connections that each
    // claim a jump to the top add up past u64::MAX.
    for _ in 0..2 {
        let link = h.connect(s, p);
        let (now, conn) = (h.now, h.conn_of(link, s));
        let frame = Frame::Publish {
            topic: Bytes::from_static(b"t"),
            seq: u64::MAX,
            payload: Bytes::new(),
        };
        let sub = h.node::<SubProto>(s);
        sub.handle_frame(now, conn, frame).expect("numbers go up");
        h.cut(link);
    }
    assert_eq!(h.node::<SubProto>(s).stats().gaps, u64::MAX);
}

mod identities;
mod patterns;
