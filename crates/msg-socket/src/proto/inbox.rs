//! Receiving fairly from many peers: one bounded queue per connection, and
//! the application takes from them in turn (PULL, DEALER, ROUTER, PAIR).
//!
//! Each connection may have up to the receive marks waiting; past them that
//! connection alone is held back (its reader stops, and the peer feels the
//! backpressure through the transport), while the others go on. The
//! application takes one message from each connection that has some, in
//! turn, so one busy peer cannot starve the rest: with `k` peers sending,
//! each gets at least one message in `k` delivered.

use std::collections::VecDeque;

use crate::proto::conns::{ConnId, IdMap, RecvLimits};

/// One connection's waiting messages.
#[derive(Debug)]
struct Queue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    /// The connection is gone: the queue goes once drained. A live
    /// connection keeps its queue, and its allocation, while it empties
    /// and fills again.
    gone: bool,
}

/// Messages waiting for the application, queued per connection.
#[derive(Debug)]
pub(crate) struct FairInbox<T> {
    queues: IdMap<Queue<T>>,
    /// Connections with something waiting, in the order they are served.
    turn: VecDeque<ConnId>,
    limits: RecvLimits,
    /// Something arrived since the last [`take_delivered`](Self::take_delivered).
    delivered: bool,
    /// Room opened since the last [`take_readable`](Self::take_readable).
    readable: bool,
    /// Messages received.
    pub(crate) received: u64,
}

impl<T> FairInbox<T> {
    pub(crate) fn new(limits: RecvLimits) -> Self {
        Self {
            queues: IdMap::default(),
            turn: VecDeque::new(),
            limits,
            delivered: false,
            readable: false,
            received: 0,
        }
    }

    /// A message of `size` payload bytes arrived on `conn`.
    pub(crate) fn push(&mut self, conn: ConnId, item: T, size: usize) {
        let queue = self.queues.entry(conn).or_insert_with(|| Queue {
            items: VecDeque::new(),
            bytes: 0,
            gone: false,
        });
        if queue.items.is_empty() {
            self.turn.push_back(conn);
        }
        queue.items.push_back((item, size));
        queue.bytes += size;
        self.received += 1;
        self.delivered = true;
    }

    /// The next message, from the connection whose turn it is.
    pub(crate) fn pop(&mut self) -> Option<(ConnId, T)> {
        let conn = self.turn.pop_front()?;
        let queue = self.queues.get_mut(&conn)?;
        let (item, size) = queue.items.pop_front()?;
        queue.bytes -= size;
        if !queue.items.is_empty() {
            self.turn.push_back(conn);
        } else if queue.gone {
            // A connection that is gone leaves nothing behind once drained.
            self.queues.remove(&conn);
        }
        self.readable = true;
        Some((conn, item))
    }

    /// Connection `conn` is gone: what it delivered stays to be taken, and
    /// its queue goes once empty.
    pub(crate) fn conn_down(&mut self, conn: ConnId) {
        if let Some(queue) = self.queues.get_mut(&conn) {
            if queue.items.is_empty() {
                self.queues.remove(&conn);
            } else {
                queue.gone = true;
            }
        }
    }

    /// Connections with a queue (waiting messages, or live).
    #[cfg(test)]
    pub(crate) fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Whether `conn` may hand over a message of `next` bytes (`None`:
    /// whether it may read on at all).
    pub(crate) fn admits(&self, conn: ConnId, next: Option<usize>) -> bool {
        match self.queues.get(&conn) {
            Some(q) => self.limits.admits(q.items.len(), q.bytes, next),
            None => true,
        }
    }

    /// Messages waiting, over all connections.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queues.values().map(|q| q.items.len()).sum()
    }

    /// The longest connection's queue.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn longest(&self) -> usize {
        self.queues
            .values()
            .map(|q| q.items.len())
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn take_delivered(&mut self) -> bool {
        std::mem::take(&mut self.delivered)
    }

    pub(crate) fn take_readable(&mut self) -> bool {
        std::mem::take(&mut self.readable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> FairInbox<u32> {
        FairInbox::new(RecvLimits {
            messages: 3,
            bytes: 100,
        })
    }

    #[test]
    fn connections_take_turns_whatever_arrived_first() {
        let mut inbox = inbox();
        for i in 0..3 {
            inbox.push(1, i, 1);
        }
        inbox.push(2, 100, 1);
        inbox.push(3, 200, 1);
        let order: Vec<u32> = std::iter::from_fn(|| inbox.pop().map(|(_, i)| i)).collect();
        assert_eq!(order, [0, 100, 200, 1, 2]);
        assert_eq!(inbox.len(), 0);
    }

    #[test]
    fn only_the_full_connection_is_held_back() {
        let mut inbox = inbox();
        for i in 0..3 {
            inbox.push(1, i, 10);
        }
        assert!(!inbox.admits(1, Some(1)));
        assert!(inbox.admits(2, Some(1)));
        assert!(inbox.take_delivered());
        inbox.pop();
        assert!(inbox.take_readable());
        assert!(inbox.admits(1, Some(1)));
    }

    #[test]
    fn a_gone_connection_leaves_nothing_behind_once_drained() {
        let mut inbox = inbox();
        inbox.push(1, 10, 1);
        inbox.push(1, 11, 1);
        inbox.push(2, 20, 1);
        // Drained but live: the queue stays for the next message.
        assert_eq!(inbox.pop(), Some((1, 10)));
        assert_eq!(inbox.pop(), Some((2, 20)));
        assert_eq!(inbox.queues(), 2);
        inbox.conn_down(2);
        assert_eq!(inbox.queues(), 1, "an empty queue goes at once");
        inbox.conn_down(1);
        assert_eq!(inbox.queues(), 1, "a queue with messages stays");
        assert_eq!(inbox.pop(), Some((1, 11)), "and they can still be taken");
        assert_eq!(inbox.queues(), 0);
        assert_eq!(inbox.pop(), None);
    }

    #[test]
    fn the_bytes_mark_holds_back_but_lets_one_large_message_in() {
        let mut inbox = inbox();
        assert!(inbox.admits(1, Some(500)));
        inbox.push(1, 0, 500);
        assert!(!inbox.admits(1, Some(1)));
        assert!(!inbox.admits(1, None));
    }
}
