//! The socket's incoming queue: bounded in messages and in bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::sync::{Notify, mpsc};

#[derive(Debug)]
struct Shared {
    bytes: AtomicUsize,
    max_bytes: usize,
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
        let queued = self.shared.bytes.load(Relaxed);
        // One message larger than the whole mark still goes into an empty queue.
        queued > 0 && queued.saturating_add(size) > self.shared.max_bytes
    }

    /// Queues `item` (of `size` payload bytes), waiting for room. Returns the
    /// item if the socket is gone.
    pub(crate) async fn send(&self, item: T, size: usize) -> Result<(), T> {
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
        self.shared.bytes.fetch_add(size, Relaxed);
        match self.tx.send((item, size)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError((item, size))) => {
                self.shared.bytes.fetch_sub(size, Relaxed);
                Err(item)
            }
        }
    }

    /// Queues `item` if both marks allow; otherwise hands it back.
    pub(crate) fn try_send(&self, item: T, size: usize) -> Result<(), T> {
        if self.over_bytes(size) {
            return Err(item);
        }
        self.shared.bytes.fetch_add(size, Relaxed);
        match self.tx.try_send((item, size)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full((item, size)))
            | Err(mpsc::error::TrySendError::Closed((item, size))) => {
                self.shared.bytes.fetch_sub(size, Relaxed);
                Err(item)
            }
        }
    }
}

impl<T> InboundRx<T> {
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|(item, size)| {
                self.shared.bytes.fetch_sub(size, Relaxed);
                self.shared.room.notify_waiters();
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
}
