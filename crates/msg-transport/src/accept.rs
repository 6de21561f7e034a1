//! The accept queue behind the TLS and QUIC listeners.
//!
//! Those listeners cannot hand out a connection the moment the operating system
//! accepts it: a handshake has to finish first, and a peer can take as long as it
//! likes to finish it. So a background task accepts, spawns one task per handshake
//! (bounded by a timeout, and in number by a semaphore), and the handshakes that
//! succeed are queued in a bounded channel for `Listener::accept`. A stalled or
//! malicious peer ties up one handshake task, never the listener.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::{PeerAddr, TransportError};

/// Handshaken connections (or accept errors) waiting for `accept`.
const READY_QUEUE: usize = 64;

pub(crate) type Ready<C> = Result<(C, PeerAddr), TransportError>;

/// The receiving end of an accept loop; dropping it stops the loop and every
/// handshake still in progress.
#[derive(Debug)]
pub(crate) struct AcceptQueue<C> {
    rx: mpsc::Receiver<Ready<C>>,
    task: JoinHandle<()>,
}

impl<C: Send + 'static> AcceptQueue<C> {
    /// Starts `accept_loop`, which gets the sender half and a [`Handshakes`] to spawn
    /// per-connection work on.
    pub(crate) fn spawn<F, Fut>(max_pending: usize, accept_loop: F) -> Self
    where
        F: FnOnce(mpsc::Sender<Ready<C>>, Handshakes) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(READY_QUEUE);
        let handshakes = Handshakes {
            permits: Arc::new(Semaphore::new(max_pending.max(1))),
            set: JoinSet::new(),
        };
        let task = tokio::spawn(accept_loop(tx, handshakes));
        AcceptQueue { rx, task }
    }

    /// The next ready connection. Cancel safe.
    pub(crate) async fn next(&mut self) -> Ready<C> {
        self.rx.recv().await.unwrap_or(Err(TransportError::Closed))
    }

    /// Stops the loop, as dropping does, and waits until it has stopped.
    ///
    /// `abort` only marks the task: the runtime drops its future, and with it what the
    /// loop holds (a TCP listener, a QUIC endpoint handle), on one of its next turns.
    /// The task's handle completes only once that future is gone.
    pub(crate) async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl<C> Drop for AcceptQueue<C> {
    fn drop(&mut self) {
        // Aborting the loop drops its JoinSet, which aborts the handshakes too.
        self.task.abort();
    }
}

/// The handshake tasks of one accept loop.
pub(crate) struct Handshakes {
    permits: Arc<Semaphore>,
    set: JoinSet<()>,
}

impl Handshakes {
    /// Waits until fewer than the maximum number of handshakes are in progress.
    ///
    /// Holding back here (rather than accepting and queueing) leaves further peers in
    /// the kernel's backlog, which is where a flood should wait.
    pub(crate) async fn slot(&mut self) -> OwnedSemaphorePermit {
        // Reap finished tasks so the set does not grow with every connection.
        while self.set.try_join_next().is_some() {}
        match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("handshake semaphore closed"),
        }
    }

    /// Runs one handshake; `permit` is released when it ends.
    pub(crate) fn spawn<Fut>(&mut self, permit: OwnedSemaphorePermit, handshake: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.set.spawn(async move {
            handshake.await;
            drop(permit);
        });
    }
}
