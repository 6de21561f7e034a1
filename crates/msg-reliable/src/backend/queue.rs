//! The request queue in front of a group-committing backend: every
//! [`Backend`] call becomes a [`Request`] on a bounded channel to one
//! committer (redb's thread, PostgreSQL's task), which takes the first
//! waiting request and everything else already queued ([`Group::gather`]),
//! writes them in one transaction and answers each caller.
//!
//! Both durable backends share it, so the calls, the gathering and the
//! answers are written once; each backend implements only its committer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::backend::Backend;
use crate::error::{StorageError, StorageErrorKind};
use crate::peer::PeerId;
use crate::proto::{IncomingState, OutgoingState, StoreBatch};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

#[derive(Debug)]
pub(crate) enum Request {
    Write(Write),
    Read(Read),
    Close(oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) enum Write {
    Append {
        peer: PeerId,
        payloads: Vec<Bytes>,
        reply: Reply<u64>,
    },
    AckOutgoing {
        peer: PeerId,
        up_to: u64,
        reply: Reply<()>,
    },
    StoreIncoming {
        peer: PeerId,
        batch: StoreBatch,
        reply: Reply<()>,
    },
    AckIncoming {
        peer: PeerId,
        seqs: Vec<u64>,
        reply: Reply<()>,
    },
}

#[derive(Debug)]
pub(crate) enum Read {
    LoadOutgoing {
        peer: PeerId,
        reply: Reply<OutgoingState>,
    },
    LoadIncoming {
        peer: PeerId,
        reply: Reply<IncomingState>,
    },
    Accepted {
        peer: PeerId,
        reply: Reply<u64>,
    },
    Peers {
        reply: Reply<Vec<PeerId>>,
    },
}

/// What a write produced: the first assigned sequence number for an
/// append, 0 for the other writes; or the write's own failure.
pub(crate) type Outcome = Result<u64, StorageError>;

impl Write {
    pub(crate) fn answer(self, outcome: Outcome) {
        match (self, outcome) {
            (w, Err(e)) => w.answer_err(e),
            (Write::Append { reply, .. }, Ok(first)) => {
                let _ = reply.send(Ok(first));
            }
            (
                Write::AckOutgoing { reply, .. }
                | Write::StoreIncoming { reply, .. }
                | Write::AckIncoming { reply, .. },
                Ok(_),
            ) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    pub(crate) fn answer_err(self, e: StorageError) {
        match self {
            Write::Append { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Write::AckOutgoing { reply, .. }
            | Write::StoreIncoming { reply, .. }
            | Write::AckIncoming { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

impl Read {
    pub(crate) fn answer_err(self, e: StorageError) {
        match self {
            Read::LoadOutgoing { reply, .. } => drop(reply.send(Err(e))),
            Read::LoadIncoming { reply, .. } => drop(reply.send(Err(e))),
            Read::Accepted { reply, .. } => drop(reply.send(Err(e))),
            Read::Peers { reply } => drop(reply.send(Err(e))),
        }
    }
}

/// Answers every write with `e`.
pub(crate) fn fail_all(writes: &mut Vec<Write>, e: StorageError) {
    for w in writes.drain(..) {
        w.answer_err(e.clone());
    }
}

/// Commits made and the write requests they carried.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    write_transactions: AtomicU64,
    write_requests: AtomicU64,
}

impl Counters {
    /// One commit that carried `writes` write requests.
    pub(crate) fn committed(&self, writes: usize) {
        self.write_transactions.fetch_add(1, Ordering::Relaxed);
        self.write_requests
            .fetch_add(writes as u64, Ordering::Relaxed);
    }

    /// (write transactions, write requests) so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.write_transactions.load(Ordering::Relaxed),
            self.write_requests.load(Ordering::Relaxed),
        )
    }
}

/// The callers' end of the queue. Requests beyond its capacity wait for
/// room (backpressure); they are not refused.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: mpsc::Sender<Request>,
    pub(crate) counters: Arc<Counters>,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Request>, Arc<Counters>) {
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let queue = Self {
            tx,
            counters: counters.clone(),
        };
        (queue, rx, counters)
    }

    /// Asks the committer to close, and waits until it has; at once if it
    /// already has.
    pub(crate) async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Request::Close(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }

    /// Queues `req` and waits for its answer.
    async fn call<T>(
        &self,
        req: Request,
        answer: oneshot::Receiver<Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.tx.send(req).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Backend for Queue {
    fn append_outgoing(
        &self,
        peer: &PeerId,
        payloads: Vec<Bytes>,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        let req = Write::Append {
            peer,
            payloads,
            reply,
        };
        self.call(Request::Write(req), answer)
    }

    fn ack_outgoing(
        &self,
        peer: &PeerId,
        up_to: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        let req = Write::AckOutgoing { peer, up_to, reply };
        self.call(Request::Write(req), answer)
    }

    fn load_outgoing(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<OutgoingState, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::LoadOutgoing { peer, reply }), answer)
    }

    fn store_incoming(
        &self,
        peer: &PeerId,
        batch: StoreBatch,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        let req = Write::StoreIncoming { peer, batch, reply };
        self.call(Request::Write(req), answer)
    }

    fn ack_incoming(
        &self,
        peer: &PeerId,
        seqs: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        let req = Write::AckIncoming { peer, seqs, reply };
        self.call(Request::Write(req), answer)
    }

    fn load_incoming(
        &self,
        peer: &PeerId,
    ) -> impl Future<Output = Result<IncomingState, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::LoadIncoming { peer, reply }), answer)
    }

    fn accepted(&self, peer: &PeerId) -> impl Future<Output = Result<u64, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        let peer = peer.clone();
        self.call(Request::Read(Read::Accepted { peer, reply }), answer)
    }

    fn peers(&self) -> impl Future<Output = Result<Vec<PeerId>, StorageError>> + Send {
        let (reply, answer) = oneshot::channel();
        self.call(Request::Read(Read::Peers { reply }), answer)
    }
}

/// Implements [`Backend`] for a type with a `fn queue(&self) -> &Queue`, by
/// handing every call to the queue.
macro_rules! backend_over_queue {
    ($ty:ty) => {
        impl $crate::backend::Backend for $ty {
            fn append_outgoing(
                &self,
                peer: &$crate::peer::PeerId,
                payloads: Vec<bytes::Bytes>,
            ) -> impl std::future::Future<Output = Result<u64, $crate::error::StorageError>> + Send
            {
                self.queue().append_outgoing(peer, payloads)
            }

            fn ack_outgoing(
                &self,
                peer: &$crate::peer::PeerId,
                up_to: u64,
            ) -> impl std::future::Future<Output = Result<(), $crate::error::StorageError>> + Send
            {
                self.queue().ack_outgoing(peer, up_to)
            }

            fn load_outgoing(
                &self,
                peer: &$crate::peer::PeerId,
            ) -> impl std::future::Future<
                Output = Result<$crate::proto::OutgoingState, $crate::error::StorageError>,
            > + Send {
                self.queue().load_outgoing(peer)
            }

            fn store_incoming(
                &self,
                peer: &$crate::peer::PeerId,
                batch: $crate::proto::StoreBatch,
            ) -> impl std::future::Future<Output = Result<(), $crate::error::StorageError>> + Send
            {
                self.queue().store_incoming(peer, batch)
            }

            fn ack_incoming(
                &self,
                peer: &$crate::peer::PeerId,
                seqs: Vec<u64>,
            ) -> impl std::future::Future<Output = Result<(), $crate::error::StorageError>> + Send
            {
                self.queue().ack_incoming(peer, seqs)
            }

            fn load_incoming(
                &self,
                peer: &$crate::peer::PeerId,
            ) -> impl std::future::Future<
                Output = Result<$crate::proto::IncomingState, $crate::error::StorageError>,
            > + Send {
                self.queue().load_incoming(peer)
            }

            fn accepted(
                &self,
                peer: &$crate::peer::PeerId,
            ) -> impl std::future::Future<Output = Result<u64, $crate::error::StorageError>> + Send
            {
                self.queue().accepted(peer)
            }

            fn peers(
                &self,
            ) -> impl std::future::Future<
                Output = Result<Vec<$crate::peer::PeerId>, $crate::error::StorageError>,
            > + Send {
                self.queue().peers()
            }
        }
    };
}
pub(crate) use backend_over_queue;

/// One group: the requests a committer takes at once.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) writes: Vec<Write>,
    pub(crate) reads: Vec<Read>,
    pub(crate) closing: Vec<oneshot::Sender<()>>,
}

impl Group {
    /// Adds `first`, then whatever else is already waiting, up to `max`
    /// requests or a close: that is the group in group commit. Nothing
    /// waits for more to arrive.
    pub(crate) fn gather(&mut self, first: Request, rx: &mut mpsc::Receiver<Request>, max: usize) {
        let mut next = Some(first);
        while let Some(req) = next.take() {
            self.add(req);
            if self.writes.len() + self.reads.len() >= max || !self.closing.is_empty() {
                break;
            }
            next = rx.try_recv().ok();
        }
    }

    fn add(&mut self, req: Request) {
        match req {
            Request::Write(w) => self.writes.push(w),
            Request::Read(r) => self.reads.push(r),
            Request::Close(done) => self.closing.push(done),
        }
    }

    /// After a close: stops the queue and refuses what raced with the close
    /// (keeping any further closers, to be told with the first).
    pub(crate) fn refuse_rest(&mut self, rx: &mut mpsc::Receiver<Request>) {
        rx.close();
        while let Ok(req) = rx.try_recv() {
            match req {
                Request::Write(w) => w.answer_err(closed()),
                Request::Read(r) => r.answer_err(closed()),
                Request::Close(done) => self.closing.push(done),
            }
        }
    }

    /// Tells every closer the store is closed.
    pub(crate) fn closed(self) {
        for done in self.closing {
            let _ = done.send(());
        }
    }
}

pub(crate) fn closed() -> StorageError {
    StorageError::from_kind(StorageErrorKind::Closed)
}
