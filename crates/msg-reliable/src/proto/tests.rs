//! Tests of the sans-IO sessions: first each half alone, frame by frame,
//! then two sessions through the [`Pair`] harness.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use msg_wire::Frame;

use self::util::{LinkConfig, Pair, Rng};
use crate::error::{OutboxLimit, ProtocolError, ReliableError};
use crate::options::{AckMode, ReliableOptions};
use crate::peer::PeerId;
use crate::proto::{
    IncomingState, OutgoingState, ReceiverSession, SenderSession, Session, SessionEvent,
    SessionStats,
};

const MS: Duration = Duration::from_millis(1);

fn opts() -> ReliableOptions {
    let mut o = ReliableOptions::new();
    o.ack_timeout(100 * MS).max_ack_timeout(400 * MS);
    o
}

fn peer() -> PeerId {
    "peer".parse().unwrap()
}

fn sender(o: &ReliableOptions) -> SenderSession {
    SenderSession::new(peer(), Arc::new(o.clone()), OutgoingState::default()).unwrap()
}

fn receiver(o: &ReliableOptions) -> ReceiverSession {
    ReceiverSession::new(peer(), Arc::new(o.clone()), IncomingState::default()).unwrap()
}

fn msg(seq: u64) -> Bytes {
    Bytes::from(format!("m{seq}"))
}

/// Stores and reports messages `1..=n` as a driver would.
fn enqueue(s: &mut SenderSession, now: Instant, range: std::ops::RangeInclusive<u64>) {
    for seq in range {
        s.reserve(1, msg(seq).len()).unwrap();
        s.handle_enqueued(now, seq, msg(seq));
    }
}

/// Sequence numbers of the `Data` frames the sender transmits now.
fn data_seqs(s: &mut SenderSession) -> Vec<u64> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|f| match f {
            Frame::Data { seq, payload } => {
                assert_eq!(payload, msg(seq));
                seq
            }
            other => panic!("sender transmitted {other:?}"),
        })
        .collect()
}

fn acks(r: &mut ReceiverSession) -> Vec<u64> {
    std::iter::from_fn(|| r.poll_transmit())
        .map(|f| match f {
            Frame::Ack { seq } => seq,
            other => panic!("receiver transmitted {other:?}"),
        })
        .collect()
}

fn deliveries(r: &mut ReceiverSession) -> Vec<u64> {
    std::iter::from_fn(|| r.poll_delivery())
        .map(|(seq, payload)| {
            assert_eq!(payload, msg(seq));
            seq
        })
        .collect()
}

/// Feeds `seqs` as Data frames, stores whatever batch comes out and reports
/// it stored; returns the batch's range, if any.
fn receive_and_store(r: &mut ReceiverSession, seqs: &[u64]) -> Option<(u64, u64)> {
    for &seq in seqs {
        r.handle_data(seq, msg(seq)).unwrap();
    }
    let batch = r.poll_store()?;
    r.handle_stored(batch.last_seq());
    Some((batch.first_seq(), batch.last_seq()))
}

// ---------------------------------------------------------------------------
// Sender

#[test]
fn sender_never_has_more_than_window_in_flight() {
    let mut o = opts();
    o.window(4);
    let mut s = sender(&o);
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=10);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s), [1, 2, 3, 4]);
    assert_eq!(s.in_flight(), 4);
    assert_eq!(data_seqs(&mut s), [] as [u64; 0], "window is full");
    s.handle_ack(t0 + MS, 2).unwrap();
    assert_eq!(data_seqs(&mut s), [5, 6]);
    assert_eq!(s.in_flight(), 4);
    s.handle_ack(t0 + 2 * MS, 6).unwrap();
    assert_eq!(data_seqs(&mut s), [7, 8, 9, 10]);
}

#[test]
fn sender_transmits_nothing_while_link_is_down() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=3);
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.poll_timeout(), None);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s), [1, 2, 3]);
    s.handle_link_down(t0 + MS);
    assert_eq!(s.poll_timeout(), None, "no timer while the link is down");
    enqueue(&mut s, t0, 4..=4);
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn cumulative_ack_releases_the_prefix_and_reports_it_once() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=5);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s).len(), 5);
    s.handle_ack(t0 + MS, 3).unwrap();
    s.handle_ack(t0 + MS, 2).unwrap(); // stale: ignored
    assert_eq!(s.poll_acked(), Some(3));
    assert_eq!(s.poll_acked(), None);
    assert_eq!((s.acked(), s.outbox_len(), s.in_flight()), (3, 2, 2));
    assert!(s.is_acked(3) && !s.is_acked(4));
    // Several acks before the driver looks are reported together.
    s.handle_ack(t0 + 2 * MS, 4).unwrap();
    s.handle_ack(t0 + 2 * MS, 5).unwrap();
    assert_eq!(s.poll_acked(), Some(5));
    assert_eq!((s.outbox_len(), s.outbox_bytes(), s.in_flight()), (0, 0, 0));
    assert_eq!(s.poll_timeout(), None, "nothing in flight: no timer");
}

#[test]
fn silence_past_ack_timeout_resends_the_unacked_tail() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=3);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s), [1, 2, 3]);
    assert_eq!(s.poll_timeout(), Some(t0 + 100 * MS));
    s.handle_timeout(t0 + 99 * MS);
    assert_eq!(data_seqs(&mut s), [] as [u64; 0], "not yet");
    s.handle_timeout(t0 + 100 * MS);
    assert_eq!(data_seqs(&mut s), [1, 2, 3], "go-back-N from acked + 1");
    assert_eq!(s.poll_timeout(), Some(t0 + 300 * MS), "timeout doubled");
    // Progress resets the timer to the base timeout, for what is left.
    s.handle_ack(t0 + 150 * MS, 1).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 250 * MS));
    s.handle_timeout(t0 + 250 * MS);
    assert_eq!(data_seqs(&mut s), [2, 3]);
}

#[test]
fn ack_timeout_doubles_up_to_its_maximum() {
    let mut s = sender(&opts());
    let mut now = Instant::now();
    enqueue(&mut s, now, 1..=1);
    s.handle_link_up(now);
    assert_eq!(data_seqs(&mut s), [1]);
    let mut waits = Vec::new();
    for _ in 0..5 {
        let at = s.poll_timeout().unwrap();
        waits.push((at - now).as_millis());
        now = at;
        s.handle_timeout(now);
        assert_eq!(data_seqs(&mut s), [1]);
    }
    assert_eq!(waits, [100, 200, 400, 400, 400]);
}

#[test]
fn link_up_goes_back_to_the_first_unacked() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=5);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s), [1, 2, 3, 4, 5]);
    s.handle_ack(t0 + MS, 2).unwrap();
    s.handle_link_down(t0 + 2 * MS);
    s.handle_link_up(t0 + 3 * MS);
    assert_eq!(data_seqs(&mut s), [3, 4, 5]);
}

#[test]
fn ack_for_more_than_resent_skips_ahead() {
    // After a reconnect the peer may already hold what an earlier connection
    // delivered: its ack moves the send point past it.
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=5);
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s).len(), 5);
    s.handle_link_down(t0);
    s.handle_link_up(t0);
    s.handle_ack(t0, 4).unwrap();
    assert_eq!(data_seqs(&mut s), [5]);
}

#[test]
fn ack_beyond_anything_stored_is_a_protocol_error() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=2);
    s.handle_link_up(t0);
    assert_eq!(
        s.handle_ack(t0, 3),
        Err(ProtocolError::AckBeyondSent { ack: 3, highest: 2 })
    );
    assert_eq!((s.acked(), s.poll_acked()), (0, None), "state unchanged");
}

#[test]
fn outbox_is_bounded_in_messages_and_bytes() {
    let mut o = opts();
    o.max_outbox_messages(3).max_outbox_bytes(100);
    let mut s = sender(&o);
    let t0 = Instant::now();
    enqueue(&mut s, t0, 1..=2);
    s.reserve(1, 1).unwrap();
    let err = s.reserve(1, 1).unwrap_err();
    assert!(
        matches!(&err, ReliableError::OutboxFull { peer: p, limit: OutboxLimit::Messages(3) } if *p == peer()),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit of 3 messages"), "{err}");
    // A failed store gives its reservation back.
    s.release(1, 1);
    s.reserve(1, 1).unwrap();
    s.release(1, 1);
    // An acknowledgement frees room.
    s.handle_link_up(t0);
    let _ = data_seqs(&mut s);
    s.handle_ack(t0, 2).unwrap();
    s.reserve(3, 100).unwrap();
    s.release(3, 100);
    assert!(matches!(
        s.reserve(1, 101),
        Err(ReliableError::OutboxFull {
            limit: OutboxLimit::Bytes(100),
            ..
        })
    ));
}

#[test]
fn messages_stored_out_of_order_wait_for_the_gap() {
    let mut s = sender(&opts());
    let t0 = Instant::now();
    s.handle_link_up(t0);
    for seq in [3, 2] {
        s.reserve(1, msg(seq).len()).unwrap();
        s.handle_enqueued(t0, seq, msg(seq));
    }
    assert_eq!(data_seqs(&mut s), [] as [u64; 0], "1 is not known yet");
    assert_eq!(s.outbox_len(), 2);
    s.reserve(1, msg(1).len()).unwrap();
    s.handle_enqueued(t0, 1, msg(1));
    assert_eq!(data_seqs(&mut s), [1, 2, 3]);
    // A message reported twice is ignored.
    s.handle_enqueued(t0, 2, msg(2));
    assert_eq!(s.outbox_len(), 3);
}

#[test]
fn sender_resumes_from_the_store_after_restart() {
    let state = OutgoingState {
        last_assigned: 7,
        unacked: vec![(6, msg(6)), (7, msg(7))],
    };
    let mut s = SenderSession::new(peer(), Arc::new(opts()), state).unwrap();
    assert_eq!((s.acked(), s.highest_stored()), (5, 7));
    let t0 = Instant::now();
    s.handle_link_up(t0);
    assert_eq!(data_seqs(&mut s), [6, 7]);
    enqueue(&mut s, t0, 8..=8);
    assert_eq!(data_seqs(&mut s), [8], "numbering continues");

    let gap = OutgoingState {
        last_assigned: 7,
        unacked: vec![(5, msg(5)), (7, msg(7))],
    };
    let err = SenderSession::new(peer(), Arc::new(opts()), gap).unwrap_err();
    assert!(err.is_storage(), "{err:?}");
}

// ---------------------------------------------------------------------------
// Receiver

#[test]
fn receiver_acks_and_delivers_only_after_the_store_confirms() {
    let mut r = receiver(&opts());
    r.handle_link_up(Instant::now());
    r.handle_data(1, msg(1)).unwrap();
    r.handle_data(2, msg(2)).unwrap();
    assert_eq!(acks(&mut r), [] as [u64; 0]);
    let batch = r.poll_store().unwrap();
    assert_eq!((batch.first_seq(), batch.last_seq()), (1, 2));
    assert!(batch.persist_payloads());
    assert_eq!(batch.payloads(), [msg(1), msg(2)]);
    // While the batch is being stored: no ack, no delivery, no second batch.
    r.handle_data(3, msg(3)).unwrap();
    assert_eq!(r.poll_store(), None);
    assert_eq!(acks(&mut r), [] as [u64; 0]);
    assert_eq!(deliveries(&mut r), [] as [u64; 0]);
    r.handle_stored(2);
    assert_eq!(acks(&mut r), [2]);
    assert_eq!(deliveries(&mut r), [1, 2]);
    assert_eq!(r.accepted(), 2);
    // What arrived meanwhile is the next batch.
    let batch = r.poll_store().unwrap();
    assert_eq!((batch.first_seq(), batch.last_seq()), (3, 3));
}

#[test]
fn reordered_messages_are_held_back_and_released_in_order() {
    let mut r = receiver(&opts());
    r.handle_link_up(Instant::now());
    assert_eq!(receive_and_store(&mut r, &[3, 2, 5]), None);
    assert_eq!(r.held_back(), 3);
    assert_eq!(acks(&mut r), [] as [u64; 0]);
    assert_eq!(receive_and_store(&mut r, &[1]), Some((1, 3)));
    assert_eq!(deliveries(&mut r), [1, 2, 3]);
    assert_eq!(acks(&mut r), [3], "one cumulative ack");
    assert_eq!(r.held_back(), 1);
    assert_eq!(receive_and_store(&mut r, &[4]), Some((4, 5)), "gap filled");
    assert_eq!(deliveries(&mut r), [4, 5]);
    assert_eq!(acks(&mut r), [5]);
}

#[test]
fn duplicates_are_dropped_and_the_watermark_acked_again() {
    let mut r = receiver(&opts());
    r.handle_link_up(Instant::now());
    receive_and_store(&mut r, &[1, 2]).unwrap();
    assert_eq!(acks(&mut r), [2]);
    assert_eq!(deliveries(&mut r), [1, 2]);
    // The sender did not get the ack and resends.
    r.handle_data(1, msg(1)).unwrap();
    r.handle_data(2, msg(2)).unwrap();
    assert_eq!(r.poll_store(), None, "nothing stored twice");
    assert_eq!(
        deliveries(&mut r),
        [] as [u64; 0],
        "nothing delivered twice"
    );
    assert_eq!(acks(&mut r), [2], "re-acked, coalesced");
    // A duplicate of a message being stored waits for that store's ack.
    r.handle_data(3, msg(3)).unwrap();
    let batch = r.poll_store().unwrap();
    r.handle_data(3, msg(3)).unwrap();
    assert_eq!(acks(&mut r), [] as [u64; 0]);
    r.handle_stored(batch.last_seq());
    assert_eq!(acks(&mut r), [3]);
    // A duplicate of a held-back message is held once.
    r.handle_data(5, msg(5)).unwrap();
    r.handle_data(5, msg(5)).unwrap();
    assert_eq!(r.held_back(), 1);
}

#[test]
fn full_hold_back_drops_the_highest() {
    let mut o = opts();
    o.hold_back_messages(3);
    let mut r = receiver(&o);
    r.handle_link_up(Instant::now());
    assert_eq!(receive_and_store(&mut r, &[9, 8, 7, 6, 5, 3]), None);
    assert_eq!(r.held_back(), 3, "bounded");
    // 3, 5, 6 were kept: the lowest. 1, 2 fill the gap before them.
    assert_eq!(receive_and_store(&mut r, &[1, 2]), Some((1, 3)));
    assert_eq!(receive_and_store(&mut r, &[4]), Some((4, 6)));
    assert_eq!(deliveries(&mut r), [1, 2, 3, 4, 5, 6]);
    // 7..9 were dropped: the sender resends them.
    assert_eq!(r.held_back(), 0);
    assert_eq!(receive_and_store(&mut r, &[7, 8, 9]), Some((7, 9)));
}

#[test]
fn hold_back_is_bounded_in_bytes() {
    let mut o = opts();
    o.hold_back_bytes(2 * msg(2).len());
    let mut r = receiver(&o);
    for seq in [2, 3, 4] {
        r.handle_data(seq, msg(seq)).unwrap();
    }
    assert_eq!(r.held_back(), 2);
    assert_eq!(receive_and_store(&mut r, &[1]), Some((1, 3)));
}

#[test]
fn a_failed_store_acks_nothing_and_the_resend_is_stored() {
    let mut r = receiver(&opts());
    r.handle_link_up(Instant::now());
    r.handle_data(1, msg(1)).unwrap();
    r.handle_data(2, msg(2)).unwrap();
    let _ = r.poll_store().unwrap();
    r.handle_data(3, msg(3)).unwrap();
    r.handle_store_failed();
    assert_eq!(acks(&mut r), [] as [u64; 0]);
    assert_eq!(deliveries(&mut r), [] as [u64; 0]);
    assert_eq!((r.accepted(), r.poll_store()), (0, None));
    // The sender resends.
    assert_eq!(receive_and_store(&mut r, &[1, 2, 3]), Some((1, 3)));
    assert_eq!(acks(&mut r), [3]);
    assert_eq!(deliveries(&mut r), [1, 2, 3]);
}

#[test]
fn receive_window_bounds_what_the_application_has_not_acked() {
    let mut o = opts();
    o.recv_window(2).hold_back_messages(1);
    let mut r = receiver(&o);
    r.handle_link_up(Instant::now());
    assert_eq!(receive_and_store(&mut r, &[1, 2, 3, 4]), Some((1, 2)));
    assert_eq!(deliveries(&mut r), [1, 2]);
    assert_eq!(acks(&mut r), [2], "3 and 4 were not accepted, so not acked");
    // 3 waits in the hold-back buffer; 4 did not fit there and was dropped.
    assert_eq!(r.held_back(), 1);
    assert_eq!(r.poll_store(), None, "window full");
    assert!(r.handle_app_ack(1));
    assert!(!r.handle_app_ack(1), "acked once");
    // Room for one: 3 is accepted from the hold-back buffer, without a
    // resend.
    assert_eq!(receive_and_store(&mut r, &[]), Some((3, 3)));
    assert_eq!(deliveries(&mut r), [3]);
    assert_eq!(r.window_used(), 2);
    // 4 needs the sender's resend, and room.
    assert_eq!(receive_and_store(&mut r, &[4]), None);
    assert!(r.handle_app_ack(2));
    assert_eq!(receive_and_store(&mut r, &[]), Some((4, 4)));
    assert_eq!(r.window_used(), 2);
}

#[test]
fn restarted_receiver_redelivers_unacked_and_acks_its_watermark() {
    let state = IncomingState {
        accepted: 5,
        undelivered: vec![(4, msg(4)), (5, msg(5))],
    };
    let mut r = ReceiverSession::new(peer(), Arc::new(opts()), state).unwrap();
    assert_eq!(deliveries(&mut r), [4, 5]);
    assert_eq!(r.window_used(), 2);
    r.handle_link_up(Instant::now());
    assert_eq!(acks(&mut r), [5], "tells the sender where it stands");
    r.handle_data(3, msg(3)).unwrap();
    assert_eq!(acks(&mut r), [5]);
    assert_eq!(receive_and_store(&mut r, &[6]), Some((6, 6)));

    let bad = IncomingState {
        accepted: 2,
        undelivered: vec![(3, msg(3))],
    };
    assert!(ReceiverSession::new(peer(), Arc::new(opts()), bad).is_err());
}

#[test]
fn data_with_sequence_zero_is_a_protocol_error() {
    let mut r = receiver(&opts());
    assert_eq!(r.handle_data(0, msg(0)), Err(ProtocolError::ZeroSequence));
    assert_eq!(r.poll_store(), None);
}

#[test]
fn auto_ack_mode_stores_only_the_watermark() {
    let mut o = opts();
    o.ack_mode(AckMode::Auto);
    let mut r = receiver(&o);
    r.handle_data(1, msg(1)).unwrap();
    assert!(!r.poll_store().unwrap().persist_payloads());
}

// ---------------------------------------------------------------------------
// Session

#[test]
fn session_sends_acks_before_data_and_rejects_other_frames() {
    let t0 = Instant::now();
    let mut s = Session::new(
        peer(),
        Arc::new(opts()),
        OutgoingState::default(),
        IncomingState::default(),
    )
    .unwrap();
    s.handle_link_up(t0);
    s.reserve(1, 2).unwrap();
    s.handle_enqueued(t0, 1, msg(1));
    s.handle_frame(
        t0,
        Frame::Data {
            seq: 1,
            payload: msg(1),
        },
    )
    .unwrap();
    let batch = s.poll_store().unwrap();
    s.handle_stored(batch.last_seq());
    assert_eq!(s.poll_transmit(), Some(Frame::Ack { seq: 1 }));
    assert_eq!(
        s.poll_transmit(),
        Some(Frame::Data {
            seq: 1,
            payload: msg(1)
        })
    );
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::Deliver {
            seq: 1,
            payload: msg(1)
        })
    );
    s.handle_frame(t0, Frame::Ack { seq: 1 }).unwrap();
    assert_eq!(s.poll_event(), Some(SessionEvent::Acked { up_to: 1 }));
    assert_eq!(
        s.handle_frame(t0, Frame::Ping { nonce: 1 }),
        Err(ProtocolError::UnexpectedFrame(msg_wire::FrameKind::Ping))
    );
    assert_eq!(s.stats().data_sent, 1);
    assert_eq!(s.stats().acks_sent, 1);
}

// ---------------------------------------------------------------------------
// Two sessions (Pair)

#[test]
fn pair_delivers_in_order_over_a_clean_link() {
    let mut o = opts();
    o.window(16);
    let mut p = Pair::new(o, 1);
    p.connect();
    p.send(true, 500);
    p.send(false, 300);
    p.drive(Duration::from_secs(60));
    p.assert_processed(500, 300);
    assert_eq!(p.data_frames, [500, 300], "nothing resent on a clean link");
    assert_eq!(
        p.max_in_flight,
        [16, 16],
        "the window was used, not exceeded"
    );
    assert!(p.a.store.outgoing.is_empty() && p.b.store.outgoing.is_empty());
    // Batched stores: a window's worth of messages per write.
    assert!(p.b.store.writes <= 500 / 8, "{}", p.b.store.writes);
}

#[test]
fn lost_acks_are_recovered_by_timeout_and_reack() {
    let mut p = Pair::new(opts(), 2);
    p.connect();
    p.send(true, 20);
    // Everything a sends arrives; b's acks are all lost for a while.
    p.link.loss = 0.0;
    p.run_for(5 * MS);
    p.link.loss = 1.0;
    p.run_for(50 * MS);
    assert_eq!(p.b.processed.len(), 20, "stored and delivered");
    assert!(p.a.session.sender().acked() < 20);
    p.link.loss = 0.0;
    p.drive(Duration::from_secs(10));
    assert_eq!(p.a.session.sender().acked(), 20);
    assert!(p.a.session.stats().timeouts >= 1);
    assert!(
        p.b.session.stats().duplicates >= 1,
        "resends were duplicates"
    );
    p.assert_processed(20, 0);
}

#[test]
fn offline_peer_receives_everything_when_it_comes_up_minutes_later() {
    let mut p = Pair::new(opts(), 3);
    p.send(true, 300);
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.data_frames, [0, 0], "nothing sent while down");
    assert_eq!(p.a.session.stats().timeouts, 0, "no timer while down");
    p.connect();
    p.drive(Duration::from_secs(60));
    p.assert_processed(300, 0);
}

#[test]
fn peer_gone_for_a_day_fills_the_outbox_then_drains() {
    let mut o = opts();
    o.max_outbox_messages(100);
    let mut p = Pair::new(o, 4);
    p.send(true, 100);
    p.run_for(Duration::from_secs(24 * 3600));
    let now = p.now;
    let err = p.a.send(now).unwrap_err();
    assert!(err.is_outbox_full(), "{err:?}");
    p.connect();
    p.drive(Duration::from_secs(60));
    p.send(true, 100);
    p.drive(Duration::from_secs(60));
    p.assert_processed(200, 0);
}

#[test]
fn link_cut_mid_stream_resends_the_unacked_tail() {
    let mut o = opts();
    o.window(32);
    let mut p = Pair::new(o, 5);
    p.connect();
    p.send(true, 200);
    p.send(false, 200);
    p.run_for(25 * MS);
    p.cut();
    p.run_for(Duration::from_secs(5));
    p.connect();
    p.drive(Duration::from_secs(60));
    p.assert_processed(200, 200);
    assert!(p.a.session.stats().retransmitted > 0);
    assert_eq!(
        p.a.session.stats().timeouts,
        0,
        "link up resent, not a timer"
    );
}

#[test]
fn crashed_receiver_redelivers_only_what_the_app_had_not_acked() {
    let mut o = opts();
    o.window(10);
    let mut p = Pair::new(o, 6);
    p.b.app_delay = 30 * MS;
    p.connect();
    p.send(true, 100);
    p.run_for(60 * MS);
    let processed = p.b.processed.len();
    assert!(processed > 0 && processed < 100, "{processed}");
    let accepted = p.b.store.accepted;
    assert!(
        accepted > processed as u64,
        "some stored, not yet processed"
    );
    p.crash(false);
    p.connect();
    p.drive(Duration::from_secs(60));
    p.assert_processed(100, 0); // checks each was processed once, in order
    assert!(
        p.b.deliveries > 100,
        "the unacked ones were delivered again"
    );
}

#[test]
fn crashed_sender_resends_what_was_not_acked() {
    let mut p = Pair::new(opts(), 7);
    p.connect();
    p.send(true, 100);
    p.run_for(15 * MS);
    p.crash(true);
    assert!(!p.a.store.outgoing.is_empty());
    p.connect();
    p.send(true, 10); // numbering continues after the restart
    p.drive(Duration::from_secs(60));
    p.assert_processed(110, 0);
}

#[test]
fn store_failures_lose_nothing() {
    let mut o = opts();
    o.window(8);
    let mut p = Pair::new(o, 8);
    p.b.store_failure = 0.5;
    p.connect();
    p.send(true, 200);
    p.drive(Duration::from_secs(600));
    p.assert_processed(200, 0);
    assert!(
        p.b.session.stats().store_failures > 0,
        "{:?} writes={}",
        p.b.session.stats(),
        p.b.store.writes
    );
}

#[test]
fn harness_detects_a_receiver_that_acks_before_storing() {
    // The harness must be able to fail: a driver that reports a batch stored
    // without storing it loses messages at the next crash, and the harness
    // notices. (Guards against a tautological harness.)
    let result = std::panic::catch_unwind(|| {
        let mut p = Pair::new(opts(), 9);
        p.b.store_latency = 50 * MS;
        p.b.app_delay = 100 * MS;
        p.connect();
        p.send(true, 10);
        p.run_for(12 * MS);
        assert!(p.b.session.receiver().is_storing());
        // Lie: report the outstanding batch stored before it is.
        p.b.session.handle_stored(10);
        p.run_for(20 * MS);
        assert_eq!(p.a.session.sender().acked(), 10);
        p.crash_with(false, false);
        p.connect();
        p.drive(Duration::from_secs(60));
        p.assert_processed(10, 0);
    });
    assert!(result.is_err(), "the harness missed lost messages");
}

/// Thousands of messages both ways through a link that loses, duplicates
/// and reorders frames, is cut at random, with slow and failing stores,
/// slow applications and crashes of either side: every message is processed
/// exactly once, in order.
#[test]
fn random_faults_deliver_exactly_once_in_order() {
    // MSG_RELIABLE_SEEDS=10000 for a soak run.
    let seeds: u64 = std::env::var("MSG_RELIABLE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    const MESSAGES: u64 = 2000;
    let mut totals = SessionStats::default();
    let mut crashes = 0;
    let mut redeliveries = 0;
    for seed in 0..seeds {
        let mut rng = Rng::new(seed ^ 0x5EED);
        let window = 1 + rng.below(64);
        let mut o = opts();
        o.window(window as usize)
            .hold_back_messages(rng.below(48) as usize)
            .recv_window(8 + rng.below(200) as usize)
            .max_outbox_messages(500);
        let mut p = Pair::new(o, seed);
        p.link = LinkConfig {
            latency: MS * (1 + rng.below(20) as u32),
            jitter: MS * rng.below(30) as u32,
            loss: rng.below(20) as f64 / 100.0,
            duplicate: rng.below(10) as f64 / 100.0,
        };
        for node in [&mut p.a, &mut p.b] {
            node.store_latency = MS * rng.below(5) as u32;
            node.store_failure = rng.below(10) as f64 / 100.0;
            node.app_delay = MS * rng.below(5) as u32;
        }
        p.connect();
        let (mut sent_a, mut sent_b) = (0, 0);
        let mut rounds = 0;
        while sent_a < MESSAGES || sent_b < MESSAGES {
            rounds += 1;
            assert!(rounds < 100_000, "seed {seed}: no progress");
            // Send a burst from each side, up to what the outbox takes.
            for (node, sent) in [(&mut p.a, &mut sent_a), (&mut p.b, &mut sent_b)] {
                let burst = rng.below(40);
                for _ in 0..burst {
                    if *sent == MESSAGES {
                        break;
                    }
                    match node.send(p.now) {
                        Ok(_) => *sent += 1,
                        Err(e) if e.is_outbox_full() => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            p.run_for(MS * rng.below(50) as u32);
            match rng.below(100) {
                0..=3 => {
                    p.cut();
                    p.run_for(MS * rng.below(500) as u32);
                    p.connect();
                }
                4 => p.crash(true),
                5 => p.crash(false),
                _ => {}
            }
            if !p.is_up() {
                p.connect();
            }
        }
        p.link.loss = p.link.loss.min(0.05);
        p.drive(Duration::from_secs(3600));
        p.assert_processed(MESSAGES, MESSAGES);
        assert_eq!(p.a.session.sender().in_flight(), 0);
        assert!(
            p.max_in_flight.iter().all(|&n| n <= window),
            "seed {seed}: more than {window} in flight: {:?}",
            p.max_in_flight
        );
        assert!(p.a.store.outgoing.is_empty() && p.b.store.outgoing.is_empty());
        assert!(p.a.store.incoming.is_empty() && p.b.store.incoming.is_empty());
        for node in [&p.a, &p.b] {
            let s = node.total_stats();
            totals.retransmitted += s.retransmitted;
            totals.timeouts += s.timeouts;
            totals.duplicates += s.duplicates;
            totals.held_back += s.held_back;
            totals.hold_back_dropped += s.hold_back_dropped;
            totals.window_full += s.window_full;
            totals.store_failures += s.store_failures;
            crashes += node.crashes;
            redeliveries += node.deliveries - MESSAGES;
        }
    }
    // The faults the test is about did happen.
    assert!(crashes > 0 && redeliveries > 0, "{crashes} {redeliveries}");
    assert!(
        totals.retransmitted > 0 && totals.timeouts > 0,
        "{totals:?}"
    );
    assert!(totals.duplicates > 0 && totals.held_back > 0, "{totals:?}");
    assert!(
        totals.hold_back_dropped > 0 && totals.window_full > 0,
        "{totals:?}"
    );
    assert!(totals.store_failures > 0, "{totals:?}");
}
