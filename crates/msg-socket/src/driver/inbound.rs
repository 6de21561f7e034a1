//! The socket's incoming queue: bounded in messages and in bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::task::{Context, Poll};

use tokio::sync::{Notify, mpsc};

#[derive(Debug)]
struct Shared {
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Senders waiting for room under the bytes mark. The receiver signals
    /// `room` only when there are some, which keeps `Notify`'s lock off the
    /// path of every message.
    waiting: AtomicUsize,
    room: Notify,
}

/// Sending side, held by the connection tasks.
#[derive(Debug)]
pub(crate) struct InboundTx<T> {
    tx: mpsc::Sender<(T, usize)>,
    shared: Arc<Shared>,
}

/// Receiving side, held by the socket.
#[derive(Debug)]
pub(crate) struct InboundRx<T> {
    rx: mpsc::Receiver<(T, usize)>,
    shared: Arc<Shared>,
}

pub(crate) fn inbound<T>(max_msgs: usize, max_bytes: usize) -> (InboundTx<T>, InboundRx<T>) {
    let (tx, rx) = mpsc::channel(max_msgs);
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        max_bytes,
        waiting: AtomicUsize::new(0),
        room: Notify::new(),
    });
    (
        InboundTx {
            tx,
            shared: shared.clone(),
        },
        InboundRx { rx, shared },
    )
}

impl<T> InboundTx<T> {
    fn over_bytes(&self, size: usize) -> bool {
        let queued = self.shared.bytes.load(SeqCst);
        // One message larger than the whole mark still goes into an empty queue.
        queued > 0 && queued.saturating_add(size) > self.shared.max_bytes
    }

    /// Queues `item` (of `size` payload bytes), waiting for room. Returns the
    /// item if the socket is gone.
    pub(crate) async fn send(&self, item: T, size: usize) -> Result<(), T> {
        if self.over_bytes(size) {
            // Registered as waiting before the check that decides to wait,
            // both sequentially consistent: either this check sees the
            // receiver's release of bytes, or the receiver sees `waiting`
            // and signals `room` (which reaches `notified()` futures from
            // their creation on).
            self.shared.waiting.fetch_add(1, SeqCst);
            let _waiting = Waiting(&self.shared);
            loop {
                let room = self.shared.room.notified();
                if !self.over_bytes(size) {
                    break;
                }
                if self.tx.is_closed() {
                    return Err(item);
                }
                room.await;
            }
        }
        self.shared.bytes.fetch_add(size, Relaxed);
        match self.tx.send((item, size)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError((item, size))) => {
                self.shared.release(size);
                Err(item)
            }
        }
    }

    /// Queues `item` if both marks allow; otherwise hands it back.
    #[cfg(test)]
    pub(crate) fn try_send(&self, item: T, size: usize) -> Result<(), T> {
        if self.over_bytes(size) {
            return Err(item);
        }
        self.shared.bytes.fetch_add(size, Relaxed);
        match self.tx.try_send((item, size)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full((item, size)))
            | Err(mpsc::error::TrySendError::Closed((item, size))) => {
                self.shared.release(size);
                Err(item)
            }
        }
    }
}

impl Shared {
    /// Gives back `size` bytes of room and wakes the senders waiting for it.
    fn release(&self, size: usize) {
        self.bytes.fetch_sub(size, SeqCst);
        if self.waiting.load(SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }
}

/// Unregisters a waiting sender however its wait ends (room, closed
/// socket, or the send future dropped).
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

impl<T> InboundRx<T> {
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|(item, size)| {
                self.shared.release(size);
                item
            })
        })
    }

    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Drop for InboundRx<T> {
    fn drop(&mut self) {
        // Wake senders waiting for room: they find the channel closed.
        self.rx.close();
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_marks_bound_the_queue() {
        let (tx, mut rx) = inbound::<u32>(3, 100);
        assert!(tx.try_send(1, 60).is_ok());
        assert_eq!(tx.try_send(2, 60), Err(2), "bytes mark");
        assert!(tx.try_send(3, 10).is_ok());
        assert!(tx.try_send(4, 10).is_ok());
        assert_eq!(tx.try_send(5, 1), Err(5), "message mark");
        assert_eq!(rx.recv().await, Some(1));
        assert!(tx.try_send(6, 60).is_ok());
    }

    #[tokio::test]
    async fn a_large_message_enters_an_empty_queue() {
        let (tx, mut rx) = inbound::<u32>(3, 100);
        assert!(tx.try_send(1, 1000).is_ok());
        assert_eq!(tx.try_send(2, 1), Err(2));
        assert_eq!(rx.recv().await, Some(1));
        assert!(tx.try_send(3, 1).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn send_waits_for_room() {
        let (tx, mut rx) = inbound::<u32>(1, 100);
        tx.send(1, 10).await.unwrap();
        let waiting = tokio::spawn(async move { tx.send(2, 10).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn send_waits_for_room_under_the_bytes_mark() {
        let (tx, mut rx) = inbound::<u32>(10, 100);
        let tx = Arc::new(tx);
        tx.send(1, 80).await.unwrap();
        let waiters: Vec<_> = (2..4)
            .map(|n| {
                let tx = tx.clone();
                tokio::spawn(async move { tx.send(n, 50).await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert_eq!(tx.shared.waiting.load(SeqCst), 2);
        // Each receive makes room for one more 50-byte message.
        assert_eq!(rx.recv().await, Some(1));
        let second = rx.recv().await.unwrap();
        let third = rx.recv().await.unwrap();
        assert_eq!(second + third, 5);
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        assert_eq!(tx.shared.waiting.load(SeqCst), 0);
        assert_eq!(tx.shared.bytes.load(SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_gets_its_item_back_when_the_receiver_goes() {
        let (tx, rx) = inbound::<u32>(10, 100);
        tx.send(1, 80).await.unwrap();
        let tx = Arc::new(tx);
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2, 50).await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(2));
        assert_eq!(tx.shared.waiting.load(SeqCst), 0);
    }
}
