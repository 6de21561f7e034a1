//! The Req socket's pending table: one entry per request that has not ended
//! yet, with its id, its deadline, its connection and, once it ended, its
//! outcome.
//!
//! The table is a slab: a `Vec` of slots reused through a free list, each
//! slot with a generation that changes whenever its entry is removed. A
//! request's id on the wire is its [`Key`], the slot's index and generation
//! together, so a reply finds its entry without hashing, and a reply to a
//! request that already ended (timed out, cancelled) cannot reach a later
//! request that reuses the slot: the generation no longer matches.
//!
//! Whoever ends a request (its reply, the loss of its connection, its
//! deadline) stores the outcome in its entry and gets back the entry's
//! waiter, a payload the table only keeps (the driver's `Waker`); the
//! request collects the outcome, which frees the slot. Time is an argument:
//! [`handle_timeout`](Table::handle_timeout) times out what is due at `now`,
//! and [`poll_timeout`](Table::poll_timeout) says when to call it next.

use std::time::Instant;

use crate::error::ReqError;
use crate::message::Message;

/// How a request ended: its reply, or why there is none.
pub(crate) type Outcome = Result<Message, ReqError>;

/// Where a request's entry lives: its slot in the table and the slot's
/// generation when the request took it. Also the request's id on the wire
/// (generation in the high 32 bits, index in the low ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The id sent with the request. Never 0: generations start at 1.
    pub(crate) fn id(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The key an id names. Any id maps to some key; one that names no live
    /// entry (a stale or made-up id) finds nothing in the table.
    pub(crate) fn from_id(id: u64) -> Self {
        Self {
            index: (id & u64::from(u32::MAX)) as u32,
            generation: (id >> 32) as u32,
        }
    }
}

/// The pending table: one entry per request that has not ended yet.
///
/// `W` is the waiter handed back when a request ends (the driver's
/// `Waker`); the table never looks at it.
///
/// The table never shrinks: after a burst of `n` requests in flight it keeps
/// `n` slots (empty ones on the free list) for the next burst, so a steady
/// pipeline allocates nothing.
#[derive(Debug)]
pub(crate) struct Table<W> {
    slots: Vec<Slot<W>>,
    /// Indices of empty slots, most recently freed last.
    free: Vec<u32>,
    /// What [`poll_timeout`](Self::poll_timeout) reports: the earliest
    /// deadline as of the last [`handle_timeout`](Self::handle_timeout),
    /// lowered by every insert with an earlier one. `None` before any
    /// deadline, when nothing was left waiting, or after
    /// [`disarm`](Self::disarm).
    armed: Option<Instant>,
}

/// One slot of the table.
#[derive(Debug)]
struct Slot<W> {
    /// Changes whenever the slot's entry is removed, so a key of an earlier
    /// occupant no longer finds it. Never 0, so no id is 0.
    generation: u32,
    entry: Option<Entry<W>>,
}

impl<W> Slot<W> {
    /// Takes the slot's entry, if any, and moves to the next generation
    /// (never 0). The caller puts the slot on the free list.
    fn vacate(&mut self) -> Option<Entry<W>> {
        let entry = self.entry.take()?;
        self.generation = self.generation.wrapping_add(1).max(1);
        Some(entry)
    }
}

/// A request that has not ended yet, or has and was not collected.
#[derive(Debug)]
pub(crate) struct Entry<W> {
    /// When the request times out.
    deadline: Instant,
    /// The connection the request is (or is about to be) queued on; `None`
    /// while it waits for a connection. Only this connection's reply or
    /// loss ends the request.
    conn: Option<u64>,
    /// Handed back when the outcome is stored.
    waiter: Option<W>,
    /// How the request ended, once it did; the request collects it.
    outcome: Option<Outcome>,
}

impl<W> Entry<W> {
    /// Ends the request with `outcome` unless it has ended already; returns
    /// the waiter to wake (after the table's lock is released).
    fn finish(&mut self, outcome: Outcome) -> Option<W> {
        if self.outcome.is_some() {
            return None;
        }
        self.outcome = Some(outcome);
        self.conn = None;
        self.waiter.take()
    }

    /// Whether the request is waiting for its reply (or its connection) on
    /// `conn`.
    fn awaits(&self, conn: u64) -> bool {
        self.outcome.is_none() && self.conn == Some(conn)
    }

    /// Whether the request ended with its deadline.
    pub(crate) fn timed_out(&self) -> bool {
        matches!(self.outcome, Some(Err(ReqError::Timeout)))
    }
}

/// Where a request stands, as [`Table::poll_outcome`] finds it.
#[derive(Debug)]
pub(crate) enum Status<'a, W> {
    /// The request ended; its entry is gone and its slot free.
    Ended(Outcome),
    /// Still waiting: the entry's waiter, for the driver to keep current.
    Waiting(&'a mut Option<W>),
    /// No entry for this key (it was removed already).
    Gone,
}

impl<W> Default for Table<W> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            armed: None,
        }
    }
}

impl<W> Table<W> {
    /// Adds a request that times out at `deadline`, queued on `conn` (or
    /// waiting for one), in a free slot: the most recently freed one, or a
    /// new one. Returns its key and whether
    /// [`poll_timeout`](Self::poll_timeout) moved earlier, i.e. whether the
    /// driver's timer must be re-armed.
    ///
    /// # Panics
    ///
    /// With 2^32 requests in flight.
    pub(crate) fn insert(
        &mut self,
        deadline: Instant,
        conn: Option<u64>,
        waiter: W,
    ) -> (Key, bool) {
        let rearm = self.armed.is_none_or(|armed| deadline < armed);
        if rearm {
            self.armed = Some(deadline);
        }
        let entry = Entry {
            deadline,
            conn,
            waiter: Some(waiter),
            outcome: None,
        };
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.entry = Some(entry);
                let key = Key {
                    index,
                    generation: slot.generation,
                };
                return (key, rearm);
            }
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 requests in flight");
        self.slots.push(Slot {
            generation: 1,
            entry: Some(entry),
        });
        let key = Key {
            index,
            generation: 1,
        };
        (key, rearm)
    }

    /// The entry `key` names, if it is still there.
    pub(crate) fn get(&mut self, key: Key) -> Option<&mut Entry<W>> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Removes the entry `key` names, if it is still there (the request was
    /// dropped before it collected its outcome), and frees its slot under a
    /// new generation.
    pub(crate) fn remove(&mut self, key: Key) -> Option<Entry<W>> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let entry = slot.vacate()?;
        self.free.push(key.index);
        Some(entry)
    }

    /// The outcome of the request `key` names once it ended, which removes
    /// its entry; until then, its waiter.
    pub(crate) fn poll_outcome(&mut self, key: Key) -> Status<'_, W> {
        let Some(slot) = self.slots.get_mut(key.index as usize) else {
            return Status::Gone;
        };
        if slot.generation != key.generation {
            return Status::Gone;
        }
        let outcome = match &mut slot.entry {
            Some(entry) => entry.outcome.take(),
            None => return Status::Gone,
        };
        let Some(outcome) = outcome else {
            // Borrowed anew: a borrow returned from the match above would
            // outlive it on every path and forbid freeing the slot below.
            return slot
                .entry
                .as_mut()
                .map_or(Status::Gone, |entry| Status::Waiting(&mut entry.waiter));
        };
        slot.vacate();
        self.free.push(key.index);
        Status::Ended(outcome)
    }

    /// Points the request `key` names at `conn` (or at none): its frame
    /// goes to another connection. A loss reported for the previous one is
    /// forgotten, since the frame was not queued there.
    pub(crate) fn reassign(&mut self, key: Key, conn: Option<u64>) {
        if let Some(entry) = self.get(key) {
            if matches!(entry.outcome, Some(Err(ReqError::ConnectionLost))) {
                entry.outcome = None;
            }
            entry.conn = conn;
        }
    }

    /// A reply to request `id` came in on connection `conn`. Ends that
    /// request and returns its waiter, unless the request already ended
    /// (its slot may hold another request now, under another generation) or
    /// went to another connection: then the reply is ignored.
    pub(crate) fn handle_reply(
        &mut self,
        id: u64,
        conn: u64,
        reply: impl Into<Message>,
    ) -> Option<W> {
        self.get(Key::from_id(id))
            .filter(|entry| entry.awaits(conn))
            .and_then(|entry| entry.finish(Ok(reply.into())))
    }

    /// Connection `conn` is gone: fails every request waiting on it with
    /// [`ReqError::ConnectionLost`], pushing their waiters to `woken`.
    pub(crate) fn handle_conn_lost(&mut self, conn: u64, woken: &mut Vec<W>) {
        woken.extend(
            self.waiting()
                .filter(|entry| entry.conn == Some(conn))
                .filter_map(|entry| entry.finish(Err(ReqError::ConnectionLost))),
        );
    }

    /// Times out every request whose deadline is at or before `now`, pushing
    /// their waiters to `woken`. [`poll_timeout`](Self::poll_timeout) is
    /// then the earliest deadline left, exactly.
    pub(crate) fn handle_timeout(&mut self, now: Instant, woken: &mut Vec<W>) {
        let mut next: Option<Instant> = None;
        for entry in self.waiting() {
            if entry.deadline <= now {
                woken.extend(entry.finish(Err(ReqError::Timeout)));
            } else {
                next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
            }
        }
        self.armed = next;
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work next: the
    /// earliest deadline, or earlier when the request that had it ended
    /// since the last `handle_timeout` (a wake for nothing, which finds the
    /// real one). `None` when no request is waiting.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.armed
    }

    /// Entries still waiting for an outcome.
    fn waiting(&mut self) -> impl Iterator<Item = &mut Entry<W>> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.entry.as_mut())
            .filter(|e| e.outcome.is_none())
    }

    /// Entries in the table, ended or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;
    use crate::proto::backoff::XorShift;
    use bytes::Bytes;

    const SEC: Duration = Duration::from_secs(1);

    /// The outcome of `key`, which must have ended.
    fn ended<W: std::fmt::Debug>(table: &mut Table<W>, key: Key) -> Outcome {
        match table.poll_outcome(key) {
            Status::Ended(outcome) => outcome,
            other => panic!("{key:?} has not ended: {other:?}"),
        }
    }

    fn is_waiting<W>(table: &mut Table<W>, key: Key) -> bool {
        matches!(table.poll_outcome(key), Status::Waiting(_))
    }

    /// Fisher-Yates with a seeded generator.
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut rng = XorShift::new(seed);
        for i in (1..items.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }

    #[test]
    fn ids_are_unique_among_requests_in_flight() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let mut live: Vec<Key> = Vec::new();
        let mut rng = XorShift::new(7);
        // Churn: insert, and now and then remove a random live request, so
        // slots get reused under new generations.
        for i in 0..5_000u32 {
            live.push(table.insert(t0 + SEC, Some(1), i).0);
            if rng.next_u64() % 3 == 0 {
                let k = live.swap_remove((rng.next_u64() % live.len() as u64) as usize);
                assert!(table.remove(k).is_some());
            }
            if i % 500 == 0 {
                let ids: HashSet<u64> = live.iter().map(|k| k.id()).collect();
                assert_eq!(ids.len(), live.len(), "duplicate id in flight");
                assert!(!ids.contains(&0), "no id is 0");
            }
        }
        let ids: HashSet<u64> = live.iter().map(|k| k.id()).collect();
        assert_eq!(ids.len(), live.len());
        assert_eq!(table.len(), live.len());
        for k in &live {
            assert_eq!(Key::from_id(k.id()), *k, "id round-trips");
        }
    }

    #[test]
    fn replies_resolve_their_own_request_in_any_order() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let keys: Vec<Key> = (0..1_000usize)
            .map(|i| table.insert(t0 + SEC, Some(1), i).0)
            .collect();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        shuffle(&mut order, 42);
        for &i in &order {
            let reply = Bytes::from(format!("reply {i}"));
            assert_eq!(table.handle_reply(keys[i].id(), 1, reply), Some(i));
        }
        // Collected in yet another order.
        shuffle(&mut order, 43);
        for &i in &order {
            assert_eq!(ended(&mut table, keys[i]).unwrap(), *format!("reply {i}"));
        }
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_reply_only_counts_from_the_requests_connection_and_only_once() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let (key, _) = table.insert(t0 + SEC, Some(1), "a");
        assert_eq!(table.handle_reply(key.id(), 2, Bytes::from("wrong")), None);
        assert!(is_waiting(&mut table, key));
        assert_eq!(
            table.handle_reply(key.id(), 1, Bytes::from("right")),
            Some("a")
        );
        assert_eq!(table.handle_reply(key.id(), 1, Bytes::from("again")), None);
        assert_eq!(ended(&mut table, key).unwrap(), "right");
        // Made-up ids find nothing.
        for id in [0, u64::MAX, key.id() + 1] {
            assert_eq!(table.handle_reply(id, 1, Bytes::new()), None);
        }
    }

    #[test]
    fn a_stale_reply_for_a_reused_slot_is_ignored() {
        let t0 = Instant::now();
        let mut table = Table::default();
        // The first request times out and is collected; the second takes
        // its slot.
        let (old, _) = table.insert(t0 + SEC, Some(1), "old");
        table.handle_timeout(t0 + SEC, &mut Vec::new());
        assert!(matches!(ended(&mut table, old), Err(ReqError::Timeout)));
        let (new, _) = table.insert(t0 + 3 * SEC, Some(1), "new");
        assert_eq!(new.index, old.index, "slot reused");
        assert_ne!(new.id(), old.id());
        // The old request's late reply reaches nobody.
        assert_eq!(table.handle_reply(old.id(), 1, Bytes::from("stale")), None);
        assert!(is_waiting(&mut table, new));
        assert!(table.remove(old).is_none(), "a stale key removes nothing");
        assert!(table.get(old).is_none());
        assert_eq!(
            table.handle_reply(new.id(), 1, Bytes::from("fresh")),
            Some("new")
        );
        assert_eq!(ended(&mut table, new).unwrap(), "fresh");
    }

    #[test]
    fn generations_skip_zero_when_they_wrap() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let (key, _) = table.insert(t0, None, ());
        table.slots[0].generation = u32::MAX;
        let key = Key {
            generation: u32::MAX,
            ..key
        };
        table.remove(key);
        let (next, _) = table.insert(t0, None, ());
        assert_eq!(next.generation, 1);
        assert_ne!(next.id(), 0);
    }

    #[test]
    fn deadlines_expire_exactly_the_requests_due() {
        let t0 = Instant::now();
        let mut table = Table::default();
        assert_eq!(table.poll_timeout(), None);
        let secs = [3u32, 1, 2, 1, 5];
        let mut keys = Vec::new();
        for (i, &s) in secs.iter().enumerate() {
            let (key, rearm) = table.insert(t0 + s * SEC, None, i);
            // Only a deadline earlier than all before it re-arms the timer.
            assert_eq!(rearm, i == 0 || i == 1, "insert {i}");
            keys.push(key);
        }
        assert_eq!(table.poll_timeout(), Some(t0 + SEC), "the earliest");

        let mut woken = Vec::new();
        let just_before = t0 + SEC - Duration::from_nanos(1);
        table.handle_timeout(just_before, &mut woken);
        assert_eq!(table.poll_timeout(), Some(t0 + SEC));
        assert!(woken.is_empty(), "nothing due yet");

        // Due at exactly `now`: the two one-second requests, no other.
        table.handle_timeout(t0 + SEC, &mut woken);
        assert_eq!(table.poll_timeout(), Some(t0 + 2 * SEC));
        woken.sort_unstable();
        assert_eq!(woken, [1, 3]);
        assert!(table.get(keys[1]).is_some_and(|e| e.timed_out()));
        assert!(matches!(ended(&mut table, keys[3]), Err(ReqError::Timeout)));
        for i in [0, 2, 4] {
            assert!(is_waiting(&mut table, keys[i]), "request {i}");
        }

        // A request that got its reply no longer times out. (It waited for
        // a connection: a reply before it was queued on one is ignored.)
        assert_eq!(table.handle_reply(keys[2].id(), 7, Bytes::new()), None);
        table.reassign(keys[2], Some(7));
        assert_eq!(table.handle_reply(keys[2].id(), 7, Bytes::new()), Some(2));
        woken.clear();
        table.handle_timeout(t0 + 4 * SEC, &mut woken);
        assert_eq!(table.poll_timeout(), Some(t0 + 5 * SEC));
        assert_eq!(woken, [0]);
        assert!(ended(&mut table, keys[2]).is_ok());

        woken.clear();
        table.handle_timeout(t0 + 9 * SEC, &mut woken);
        assert_eq!(table.poll_timeout(), None, "nothing left waiting");
        assert_eq!(woken, [4]);
    }

    #[test]
    fn poll_timeout_may_be_early_but_never_late() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let (first, _) = table.insert(t0 + SEC, None, ());
        table.insert(t0 + 2 * SEC, None, ());
        table.remove(first);
        // The removal does not scan for the next deadline: a wake at the
        // first one's finds the real one.
        assert_eq!(table.poll_timeout(), Some(t0 + SEC));
        let mut woken = Vec::new();
        table.handle_timeout(t0 + SEC, &mut woken);
        assert_eq!(table.poll_timeout(), Some(t0 + 2 * SEC));
        assert!(woken.is_empty());
    }

    #[test]
    fn a_lost_connection_fails_exactly_its_requests() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let conns = [Some(1), Some(2), None, Some(1), Some(2), Some(1)];
        let keys: Vec<Key> = conns
            .iter()
            .enumerate()
            .map(|(i, &conn)| table.insert(t0 + SEC, conn, i).0)
            .collect();
        // Request 5 got its reply before the loss: it keeps it.
        assert_eq!(
            table.handle_reply(keys[5].id(), 1, Bytes::from("ok")),
            Some(5)
        );

        let mut woken = Vec::new();
        table.handle_conn_lost(1, &mut woken);
        assert_eq!(woken, [0, 3]);
        for i in [0, 3] {
            assert!(matches!(
                ended(&mut table, keys[i]),
                Err(ReqError::ConnectionLost)
            ));
        }
        assert_eq!(ended(&mut table, keys[5]).unwrap(), "ok");
        for i in [1, 2, 4] {
            assert!(is_waiting(&mut table, keys[i]), "request {i}");
        }
        woken.clear();
        table.handle_conn_lost(1, &mut woken);
        assert!(woken.is_empty(), "a second loss finds nothing");
    }

    #[test]
    fn a_request_moved_to_another_connection_forgets_the_old_ones_loss() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let (key, _) = table.insert(t0 + SEC, Some(1), ());
        let mut woken = Vec::new();
        // The connection refused the frame and is reported lost before the
        // request moves on.
        table.handle_conn_lost(1, &mut woken);
        table.reassign(key, Some(2));
        assert!(is_waiting(&mut table, key));
        table.handle_conn_lost(1, &mut woken);
        assert!(is_waiting(&mut table, key), "no longer on connection 1");
        // The waiter was handed out with the first loss; the driver keeps
        // it current.
        if let Status::Waiting(waiter) = table.poll_outcome(key) {
            *waiter = Some(());
        }
        assert_eq!(table.handle_reply(key.id(), 2, Bytes::new()), Some(()));
    }

    #[test]
    fn removing_a_request_frees_its_slot_for_reuse() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let (a, _) = table.insert(t0 + SEC, Some(1), 'a');
        let (b, _) = table.insert(t0 + SEC, Some(1), 'b');
        // The caller of `a` went away before its reply.
        assert!(table.remove(a).is_some());
        assert!(matches!(table.poll_outcome(a), Status::Gone));
        assert_eq!(table.len(), 1);
        let (c, _) = table.insert(t0 + SEC, Some(1), 'c');
        assert_eq!(c.index, a.index, "the freed slot, not a new one");
        assert_eq!(table.slots.len(), 2);
        assert_eq!(table.handle_reply(a.id(), 1, Bytes::new()), None);
        assert_eq!(table.handle_reply(b.id(), 1, Bytes::new()), Some('b'));
        assert_eq!(table.handle_reply(c.id(), 1, Bytes::new()), Some('c'));
    }

    #[test]
    fn the_table_keeps_its_size_after_a_burst() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let keys: Vec<Key> = (0..1_000u32)
            .map(|i| table.insert(t0 + SEC, Some(1), i).0)
            .collect();
        for &k in &keys {
            assert!(table.remove(k).is_some());
        }
        assert_eq!(table.len(), 0);
        // The table does not shrink: the slots stay, empty, for the next
        // burst.
        assert_eq!(table.slots.len(), 1_000);
        assert_eq!(table.free.len(), 1_000);
        // A smaller burst reuses them, the most recently freed first, and
        // grows nothing.
        for i in 0..10u32 {
            let (key, _) = table.insert(t0 + SEC, Some(1), i);
            assert_eq!(key.index, 999 - i);
        }
        assert_eq!(table.slots.len(), 1_000);
        assert_eq!(table.len(), 10);
    }
}
