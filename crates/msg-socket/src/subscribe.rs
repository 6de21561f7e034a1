//! The subscribing side of publish/subscribe.

use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use msg_transport::{Endpoint, Transport};
use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::{ConnHandle, Pattern, PeerInfo};
use crate::driver::core::Core;
use crate::driver::inbound::{InboundRx, InboundTx, inbound};
use crate::error::SocketError;
use crate::monitor::{SocketEvents, SocketStats};
use crate::options::SocketOptions;
use crate::proto::topics::{TopicSet, gap};
use crate::socket::{CloseReport, impl_common};

/// Receives the messages of one or more publishers that match its
/// subscriptions.
///
/// Subscriptions are topic prefixes (the empty prefix is everything). They
/// are sent to every connected publisher, and sent again after every
/// reconnect, so a subscriber whose publisher restarts keeps receiving
/// without doing anything. Messages arrive as a [`Stream`] of
/// [`PubMessage`]s.
///
/// High-water mark: at most [`recv_hwm`](SocketOptions::recv_hwm) messages
/// (and [`recv_hwm_bytes`](SocketOptions::recv_hwm_bytes)) wait in the
/// socket; past that the newest are dropped and counted
/// ([`SocketStats::dropped_hwm`]), so a slow reader never slows its
/// publishers. Messages a publisher dropped for this subscriber show up as
/// gaps in the sequence numbers and are counted in [`SocketStats::gaps`].
#[derive(Debug)]
pub struct SubSocket {
    core: Arc<Core>,
    state: Arc<SubState>,
    rx: InboundRx<PubMessage>,
}

#[derive(Debug)]
struct SubState {
    core: Arc<Core>,
    topics: Mutex<TopicSet>,
    conns: Mutex<Vec<Arc<ConnHandle>>>,
    tx: InboundTx<PubMessage>,
}

/// A message received by a [`SubSocket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubMessage {
    topic: Bytes,
    payload: Bytes,
    seq: u64,
    publisher: Arc<PeerInfo>,
}

impl PubMessage {
    /// The topic it was published under.
    pub fn topic(&self) -> &Bytes {
        &self.topic
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Takes the payload out.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// Its number in the publisher's stream to this subscriber: 1, 2, 3,
    /// ... per connection; a jump means messages were dropped in between.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The publisher it came from.
    pub fn publisher(&self) -> &PeerInfo {
        &self.publisher
    }
}

impl SubSocket {
    /// A socket with default options.
    pub fn new() -> Self {
        Self::with_options(SocketOptions::default()).expect("default options are valid")
    }

    /// A socket with these options.
    ///
    /// # Errors
    ///
    /// [`SocketError::Config`] when the options contradict each other.
    pub fn with_options(options: SocketOptions) -> Result<Self, SocketError> {
        let core = Core::new(SocketType::Sub, options)?;
        let (tx, rx) = inbound(core.opts.recv_hwm, core.opts.recv_hwm_bytes);
        Ok(Self {
            state: Arc::new(SubState {
                core: core.clone(),
                topics: Mutex::new(TopicSet::default()),
                conns: Mutex::new(Vec::new()),
                tx,
            }),
            core,
            rx,
        })
    }

    /// Subscribes to every topic that starts with `prefix` ("" for all).
    ///
    /// Subscribing twice to the same prefix needs two unsubscribes to undo.
    /// Takes effect at each publisher once the subscription has reached it.
    pub async fn subscribe(&self, prefix: impl Into<Bytes>) {
        let prefix = prefix.into();
        let first = self
            .state
            .topics
            .lock()
            .expect("topics lock")
            .subscribe(prefix.clone());
        if first {
            self.state
                .tell_all(Frame::Subscribe { topic: prefix })
                .await;
        }
    }

    /// Undoes one [`subscribe`](Self::subscribe) of `prefix`.
    pub async fn unsubscribe(&self, prefix: impl Into<Bytes>) {
        let prefix = prefix.into();
        let last = self
            .state
            .topics
            .lock()
            .expect("topics lock")
            .unsubscribe(&prefix);
        if last {
            self.state
                .tell_all(Frame::Unsubscribe { topic: prefix })
                .await;
        }
    }

    /// The next message; `None` once the socket is closed.
    pub async fn recv(&mut self) -> Option<PubMessage> {
        self.rx.recv().await
    }
}

impl Default for SubSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream for SubSocket {
    type Item = PubMessage;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PubMessage>> {
        self.rx.poll_recv(cx)
    }
}

impl SubState {
    /// Sends a control frame to every connected publisher.
    async fn tell_all(&self, frame: Frame) {
        let conns = self.conns.lock().expect("conns lock").clone();
        for conn in conns {
            if let Ok(f) = conn.encode(&frame) {
                // A connection that just closed gets the frame on reconnect.
                let _ = conn.send(f).await;
            }
        }
    }
}

impl Pattern for SubState {
    async fn connected(&self, conn: &Arc<ConnHandle>) {
        self.conns.lock().expect("conns lock").push(conn.clone());
        let prefixes: Vec<Bytes> = self
            .topics
            .lock()
            .expect("topics lock")
            .prefixes()
            .cloned()
            .collect();
        for topic in prefixes {
            if let Ok(f) = conn.encode(&Frame::Subscribe { topic }) {
                if conn.send(f).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn frame(
        &self,
        conn: &Arc<ConnHandle>,
        frame: Frame,
    ) -> Result<(), (Reason, &'static str)> {
        match frame {
            Frame::Publish {
                topic,
                seq,
                payload,
            } => {
                let counters = &self.core.counters;
                let last = conn.seq.swap(seq, Relaxed);
                let missed = gap(last, seq);
                if missed > 0 {
                    counters.gaps.fetch_add(missed, Relaxed);
                }
                let size = payload.len();
                let msg = PubMessage {
                    topic,
                    payload,
                    seq,
                    publisher: conn.peer.clone(),
                };
                if self.tx.try_send(msg, size).is_err() {
                    counters.dropped_hwm.fetch_add(1, Relaxed);
                }
                Ok(())
            }
            _ => Err((
                Reason::ProtocolError,
                "a SUB socket only accepts publications",
            )),
        }
    }

    fn disconnected(&self, conn: &Arc<ConnHandle>) {
        let id = conn.peer.conn_id;
        self.conns
            .lock()
            .expect("conns lock")
            .retain(|c| c.peer.conn_id != id);
    }
}

impl_common!(SubSocket);
