//! The reliable layer of msg: persistent, acknowledged, ordered delivery
//! between peers that come and go.
//!
//! Peers have stable identities ([`PeerId`]). For each ordered pair of peers
//! (this side → that peer) the sender numbers its messages 1, 2, 3, ... and
//! keeps them in a store until the peer has stored them in turn. The link
//! between them may drop, duplicate and reorder frames, go down for a day,
//! and either side may crash and restart; what reaches the application is
//! still every message, once, in order.
//!
//! # Guarantees
//!
//! With a durable [`Backend`] ([`RedbBackend`]); for [`MemoryBackend`] read
//! "until the process exits" for "durable":
//!
//! 1. **Stored before acknowledged to the caller.** A message is durable
//!    once the store's `append_outgoing` completed; from then on it is sent,
//!    and resent, until the peer acknowledges it, across reconnects and
//!    restarts of either side. A store error is returned to the caller and
//!    the message does not exist.
//! 2. **Stored before acknowledged to the sender.** The receiver stores a
//!    message together with its new acceptance watermark in one atomic
//!    write, and acknowledges only what that write covered. A crash can
//!    never leave a message acknowledged but not stored, nor accepted but
//!    not stored.
//! 3. **In order, no gaps, no duplicates.** Per sending peer, the receiver
//!    accepts sequence numbers strictly in order (holding later ones back in
//!    a bounded buffer), and drops everything at or below its watermark.
//! 4. **Application acknowledgement.** In [`AckMode::Manual`], an accepted
//!    message stays stored until the application acknowledges it; if the
//!    process dies first, it is delivered again after the restart (in order,
//!    before anything newer from that peer). An acknowledged message is
//!    never delivered again. In [`AckMode::Auto`], delivery counts as
//!    acknowledgement and only the watermark is stored: at most once to the
//!    application, still in order.
//! 5. **Bounded.** Every buffer has a configured limit
//!    ([`ReliableOptions`]): the window of messages in flight, the outbox per
//!    peer (past it `send_to` waits for room, `try_send_to` fails with
//!    [`ReliableError::OutboxFull`]), the
//!    hold-back buffer, and the receive window of messages not yet
//!    acknowledged by the application.
//!
//! Not guaranteed: order *between* different peers, and delivery when a
//! sender's store is deleted while its peer keeps its own (the peer would
//! take the renumbered messages for duplicates; the sender reports
//! [`ProtocolError::AckBeyondSent`] instead of losing them silently).
//!
//! # Using it
//!
//! [`ReliableSocket`] is the socket you use: open it with an identity, options and
//! a [`Backend`], [`bind`](ReliableSocket::bind) and
//! [`connect`](ReliableSocket::connect) like any msg socket (it runs over a
//! [`PeerSocket`](msg_socket::PeerSocket)) or hand it a [`Link`] of your
//! own, then [`send_to`](ReliableSocket::send_to) peers and
//! [`recv`](ReliableSocket::recv) [`Delivery`]s.
//!
//! # Structure
//!
//! The protocol is a sans-IO state machine per peer, [`Session`] (made of a
//! [`SenderSession`] and a [`ReceiverSession`]): frames, timeouts and storage
//! outcomes in, frames, store batches and events out, time always an
//! argument. The driver, one task per [`ReliableSocket`], connects every
//! peer's session to a [`Link`] (the network) and a [`Backend`] (the store).
//!
//! # Feature flags
//!
//! - `redb` (default): [`RedbBackend`], the embedded durable backend.
//! - `postgres`: `PostgresBackend`, the shared durable backend: one
//!   identity's state in a PostgreSQL database, owned by one instance at a
//!   time with a lease and a fencing token, so that another instance (on
//!   another machine) can take over when the owner dies.

mod backend;
mod driver;
mod error;
mod link;
#[cfg(feature = "metrics")]
mod metrics_export;
mod options;
mod peer;
mod proto;
mod socket;

pub use backend::{Backend, MemoryBackend};
#[cfg(feature = "postgres")]
pub use backend::{PostgresBackend, PostgresOptions, PostgresStats};
#[cfg(feature = "redb")]
pub use backend::{RedbBackend, RedbStats};
pub use driver::ReliableStats;
pub use error::{OutboxLimit, ProtocolError, ReliableError, StorageError, StorageErrorKind};
pub use link::{Link, LinkEvent};
#[cfg(feature = "metrics")]
pub use metrics_export::METRICS;
pub use options::{AckMode, ReliableOptions};
pub use peer::PeerId;
pub use proto::{
    IncomingState, OutgoingState, ReceiverSession, SenderSession, Session, SessionEvent,
    SessionStats, StoreBatch,
};
pub use socket::{Deliveries, Delivery, ReliableSocket, ShutdownReport};
