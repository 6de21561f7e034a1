//! Errors of the reliable layer.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use msg_wire::FrameKind;

use crate::peer::PeerId;

/// A shared, cloneable error source.
///
/// One failed commit of a group-committed write fails every request in it,
/// so the cause is shared between them behind an [`Arc`].
type Source = Arc<dyn StdError + Send + Sync + 'static>;

/// The error type of the reliable layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReliableError {
    /// The storage backend failed; nothing the failed operation covered was
    /// acknowledged to anyone.
    #[error("storage operation failed")]
    Storage(#[from] StorageError),

    /// The outbox for `peer` is at its configured limit; the message was
    /// not stored. It frees up as the peer acknowledges messages.
    #[error("outbox for peer {peer} is full ({limit})")]
    OutboxFull {
        /// The peer whose outbox is full.
        peer: PeerId,
        /// The limit that was reached.
        limit: OutboxLimit,
    },

    /// The reliable socket (or its storage) has been closed.
    #[error("reliable socket is closed")]
    Closed,

    /// A peer id was empty or longer than [`PeerId::MAX_LEN`] bytes.
    #[error("invalid peer id of {len} bytes (must be 1 to 255)")]
    InvalidPeerId {
        /// Length of the rejected id, in bytes.
        len: usize,
    },

    /// An option of [`ReliableOptions`](crate::ReliableOptions) is out of
    /// range.
    #[error("invalid reliable options: {what}")]
    InvalidOptions {
        /// What is wrong.
        what: &'static str,
    },

    /// A peer broke the protocol of the reliable layer.
    #[error("peer {peer} broke the reliable protocol")]
    Protocol {
        /// The offending peer.
        peer: PeerId,
        /// What it did.
        #[source]
        source: ProtocolError,
    },

    /// The link to a peer failed (see [`Link`](crate::Link)).
    #[error("link to peer {peer} failed")]
    Link {
        /// The peer.
        peer: PeerId,
        /// The link's own error.
        #[source]
        source: Source,
    },

    /// Creating, binding or connecting the underlying `PeerSocket` failed.
    #[error("socket operation failed")]
    Socket(#[from] msg_socket::SocketError),

    /// The reliable socket runs over a user-supplied [`Link`](crate::Link), so it
    /// has no socket to bind or connect: do that on the link.
    #[error("reliable socket runs over a custom link and has no peer socket")]
    CustomLink,
}

impl ReliableError {
    /// A [`ReliableError::Link`] for `peer` caused by `source`.
    pub fn link(peer: PeerId, source: impl StdError + Send + Sync + 'static) -> Self {
        ReliableError::Link {
            peer,
            source: Arc::new(source),
        }
    }

    /// Whether the reliable socket has been closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, ReliableError::Closed)
    }
}

impl ReliableError {
    /// Whether this is [`ReliableError::OutboxFull`].
    pub fn is_outbox_full(&self) -> bool {
        matches!(self, ReliableError::OutboxFull { .. })
    }

    /// Whether this is a [`ReliableError::Storage`] failure.
    pub fn is_storage(&self) -> bool {
        matches!(self, ReliableError::Storage(_))
    }
}

/// Which outbox limit was reached, with its configured value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboxLimit {
    /// [`ReliableOptions::max_outbox_messages`](crate::ReliableOptions::max_outbox_messages).
    Messages(usize),
    /// [`ReliableOptions::max_outbox_bytes`](crate::ReliableOptions::max_outbox_bytes).
    Bytes(usize),
}

impl fmt::Display for OutboxLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboxLimit::Messages(n) => write!(f, "limit of {n} messages"),
            OutboxLimit::Bytes(n) => write!(f, "limit of {n} bytes"),
        }
    }
}

/// How a peer broke the protocol of the reliable layer.
///
/// Returned by [`Session::handle_frame`](crate::Session::handle_frame); the
/// driver should close the link to that peer and log it. None of these
/// change the session's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A `Data` frame with sequence number 0 (sequences start at 1).
    #[error("data frame with sequence number 0")]
    ZeroSequence,
    /// An `Ack` for a sequence number this side never stored for the peer.
    ///
    /// A peer that does this either is broken or remembers a conversation
    /// this side has forgotten (its store was deleted or replaced while the
    /// peer kept its own): the peer would silently drop the new messages
    /// as duplicates, so this is reported instead.
    #[error("acknowledgement of sequence {ack} beyond the highest stored sequence {highest}")]
    AckBeyondSent {
        /// The acknowledged sequence number.
        ack: u64,
        /// The highest sequence number stored for the peer.
        highest: u64,
    },
    /// A frame kind the reliable layer does not use.
    #[error("unexpected {0} frame")]
    UnexpectedFrame(FrameKind),
}

/// A failure of a storage [`Backend`](crate::Backend).
///
/// Opaque, in the style of `hyper::Error`: ask it what it is with
/// [`kind`](StorageError::kind) or the `is_*` predicates; the underlying
/// cause, if any, is its [`source`](StdError::source). It is cheap to clone
/// (the cause is shared), because one failed group commit fails every
/// request that was part of it.
#[derive(Clone)]
pub struct StorageError {
    kind: StorageErrorKind,
    source: Option<Source>,
}

/// What kind of [`StorageError`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Reading or writing the store failed (I/O error, disk full, a failed
    /// commit). The operation had no effect.
    Io,
    /// The store is already open, by another process or another handle in
    /// this one. A store has one owner at a time.
    AlreadyOpen,
    /// The stored data is not what this crate wrote.
    Corrupt,
    /// An incoming batch does not start right after the stored acceptance
    /// watermark. This is a bug in the caller, not in the store; the batch
    /// was not stored.
    Conflict,
    /// The store has been closed.
    Closed,
    /// This handle no longer owns the identity whose state it holds:
    /// another instance took it over (after this one's lease ran out or its
    /// database session ended). Nothing more is written through this
    /// handle; open a new one to compete for ownership again. Only backends
    /// shared between instances, such as
    /// `PostgresBackend` (feature `postgres`),
    /// report it.
    Fenced,
    /// Any other failure of a user-supplied backend.
    Other,
}

impl StorageError {
    /// An error of the given kind with an underlying cause.
    pub fn new(kind: StorageErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(Arc::from(source.into())),
        }
    }

    /// An error of the given kind without an underlying cause.
    pub fn from_kind(kind: StorageErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// Whether the store was already open elsewhere.
    pub fn is_already_open(&self) -> bool {
        self.kind == StorageErrorKind::AlreadyOpen
    }

    /// Whether an incoming batch conflicted with the stored watermark.
    pub fn is_conflict(&self) -> bool {
        self.kind == StorageErrorKind::Conflict
    }

    /// Whether the store has been closed.
    pub fn is_closed(&self) -> bool {
        self.kind == StorageErrorKind::Closed
    }

    /// Whether another instance took over the identity this store handle
    /// owned ([`StorageErrorKind::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        self.kind == StorageErrorKind::Fenced
    }
}

impl fmt::Debug for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StorageError");
        d.field("kind", &self.kind);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            StorageErrorKind::Io => "storage i/o failed",
            StorageErrorKind::AlreadyOpen => "store is already open by another owner",
            StorageErrorKind::Corrupt => "stored data is corrupt",
            StorageErrorKind::Conflict => {
                "incoming batch does not follow the stored acceptance watermark"
            }
            StorageErrorKind::Closed => "store is closed",
            StorageErrorKind::Fenced => {
                "another instance took over this identity; this store handle is fenced off"
            }
            StorageErrorKind::Other => "storage failed",
        })
    }
}

impl StdError for StorageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
