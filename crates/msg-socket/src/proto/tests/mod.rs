//! The pattern state machines on the harness: every protocol decision,
//! tested without a socket, on a virtual clock.

mod util;

use bytes::Bytes;
use msg_wire::{Compression, Frame, FrameCodec, Reason};

use crate::options::SocketOptions;
use crate::proto::publish::{MAX_SUBSCRIPTIONS, PubProto};
use crate::proto::subscribe::SubProto;
use crate::proto::{Protocol, Wake};
use crate::subscribe::PubMessage;
use util::{Harness, NodeId};

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
