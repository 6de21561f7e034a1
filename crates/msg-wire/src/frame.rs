//! Frame types: what travels on a connection after the handshake.

use std::fmt;

use bytes::Bytes;

use crate::error::WireError;

/// Protocol version spoken by this crate, carried in every frame header and
/// in the handshake.
pub const PROTOCOL_VERSION: u8 = 1;

/// Length of the fixed frame header: body length (4), version, kind, flags.
pub const HEADER_LEN: usize = 7;

/// Longest topic a Publish, Subscribe or Unsubscribe frame can carry, in
/// bytes.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;

/// Longest reason text of a Close frame or handshake rejection, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// One protocol frame.
///
/// Payloads and topics are [`Bytes`]: decoding slices them out of the read
/// buffer without copying (unless the payload was compressed), and cloning a
/// frame is cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A request; the reply carries the same `id`.
    Request {
        /// Request id chosen by the requester, unique among its requests in
        /// flight on this connection.
        id: u64,
        /// Application payload.
        payload: Bytes,
    },
    /// The reply to the request with the same `id`.
    Reply {
        /// Id of the request this answers.
        id: u64,
        /// Application payload.
        payload: Bytes,
    },
    /// A published message.
    Publish {
        /// Topic; subscribers match it by prefix.
        topic: Bytes,
        /// Per-publisher sequence number, for gap counting.
        seq: u64,
        /// Application payload.
        payload: Bytes,
    },
    /// Subscribe to every topic starting with `topic` (empty: everything).
    Subscribe {
        /// Topic prefix.
        topic: Bytes,
    },
    /// Undo one earlier [`Frame::Subscribe`] with the same prefix.
    Unsubscribe {
        /// Topic prefix.
        topic: Bytes,
    },
    /// Liveness probe; the peer answers with a [`Frame::Pong`] carrying the
    /// same nonce.
    Ping {
        /// Opaque value echoed by the Pong.
        nonce: u64,
    },
    /// Answer to a [`Frame::Ping`].
    Pong {
        /// The nonce of the Ping being answered.
        nonce: u64,
    },
    /// The sender is closing the connection, and why.
    Close {
        /// Machine-readable reason.
        code: Reason,
        /// Human-readable detail, at most [`MAX_REASON_LEN`] bytes of UTF-8.
        text: String,
    },
    /// A message of the reliable layer.
    Data {
        /// Sequence number of the message in its (sender, receiver) stream.
        seq: u64,
        /// Application payload.
        payload: Bytes,
    },
    /// Cumulative acknowledgement of the reliable layer: every Data frame up
    /// to and including `seq` has been stored by the receiver (not merely
    /// received), so the sender may forget them.
    Ack {
        /// Highest sequence number received without gaps.
        seq: u64,
    },
    /// A one-way message, answered by nothing: what PUSH sends to PULL,
    /// PAIR to PAIR, and a ROUTER to a DEALER. (A DEALER sends Request
    /// frames of id 0, so that a REP can answer it.)
    Message {
        /// Application payload.
        payload: Bytes,
    },
    /// One part of a multipart message other than its last. A message of
    /// `n` parts travels as `n - 1` `Part` frames followed by the frame
    /// that carries the last part (a [`Frame::Request`], [`Frame::Reply`]
    /// or [`Frame::Message`]), which completes it. The receiver delivers all
    /// parts or none.
    Part {
        /// This part's bytes.
        payload: Bytes,
    },
}

impl Frame {
    /// The kind of this frame.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Request { .. } => FrameKind::Request,
            Frame::Reply { .. } => FrameKind::Reply,
            Frame::Publish { .. } => FrameKind::Publish,
            Frame::Subscribe { .. } => FrameKind::Subscribe,
            Frame::Unsubscribe { .. } => FrameKind::Unsubscribe,
            Frame::Ping { .. } => FrameKind::Ping,
            Frame::Pong { .. } => FrameKind::Pong,
            Frame::Close { .. } => FrameKind::Close,
            Frame::Data { .. } => FrameKind::Data,
            Frame::Ack { .. } => FrameKind::Ack,
            Frame::Message { .. } => FrameKind::Message,
            Frame::Part { .. } => FrameKind::Part,
        }
    }

    /// The application payload, for the kinds that have one (Request,
    /// Reply, Publish, Data, Message, Part).
    pub fn payload(&self) -> Option<&Bytes> {
        match self {
            Frame::Request { payload, .. }
            | Frame::Reply { payload, .. }
            | Frame::Publish { payload, .. }
            | Frame::Data { payload, .. }
            | Frame::Message { payload }
            | Frame::Part { payload } => Some(payload),
            _ => None,
        }
    }
}

/// The kind byte of a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameKind {
    /// [`Frame::Request`], `0x01`.
    Request = 0x01,
    /// [`Frame::Reply`], `0x02`.
    Reply = 0x02,
    /// [`Frame::Publish`], `0x03`.
    Publish = 0x03,
    /// [`Frame::Subscribe`], `0x04`.
    Subscribe = 0x04,
    /// [`Frame::Unsubscribe`], `0x05`.
    Unsubscribe = 0x05,
    /// [`Frame::Ping`], `0x06`.
    Ping = 0x06,
    /// [`Frame::Pong`], `0x07`.
    Pong = 0x07,
    /// [`Frame::Close`], `0x08`.
    Close = 0x08,
    /// [`Frame::Data`], `0x09`.
    Data = 0x09,
    /// [`Frame::Ack`], `0x0A`.
    Ack = 0x0A,
    /// [`Frame::Message`], `0x0B`.
    Message = 0x0B,
    /// [`Frame::Part`], `0x0C`.
    Part = 0x0C,
}

impl FrameKind {
    /// The wire code of the kind.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Whether frames of this kind end with an application payload, which
    /// is the only part of a frame that may be compressed.
    pub const fn has_payload(self) -> bool {
        matches!(
            self,
            FrameKind::Request
                | FrameKind::Reply
                | FrameKind::Publish
                | FrameKind::Data
                | FrameKind::Message
                | FrameKind::Part
        )
    }

    /// Name of the kind, as used by `Display` (`"Request"`, `"Ping"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            FrameKind::Request => "Request",
            FrameKind::Reply => "Reply",
            FrameKind::Publish => "Publish",
            FrameKind::Subscribe => "Subscribe",
            FrameKind::Unsubscribe => "Unsubscribe",
            FrameKind::Ping => "Ping",
            FrameKind::Pong => "Pong",
            FrameKind::Close => "Close",
            FrameKind::Data => "Data",
            FrameKind::Ack => "Ack",
            FrameKind::Message => "Message",
            FrameKind::Part => "Part",
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for FrameKind {
    type Error = WireError;

    /// # Errors
    ///
    /// [`WireError::UnknownKind`] for a code no kind has.
    fn try_from(code: u8) -> Result<Self, WireError> {
        Ok(match code {
            0x01 => FrameKind::Request,
            0x02 => FrameKind::Reply,
            0x03 => FrameKind::Publish,
            0x04 => FrameKind::Subscribe,
            0x05 => FrameKind::Unsubscribe,
            0x06 => FrameKind::Ping,
            0x07 => FrameKind::Pong,
            0x08 => FrameKind::Close,
            0x09 => FrameKind::Data,
            0x0A => FrameKind::Ack,
            0x0B => FrameKind::Message,
            0x0C => FrameKind::Part,
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

impl From<FrameKind> for u8 {
    fn from(kind: FrameKind) -> u8 {
        kind.code()
    }
}

/// Why a connection is being closed or a handshake refused: the `u16` code
/// of a [`Frame::Close`] and of a handshake rejection.
///
/// Codes this build does not know are kept as [`Reason::Unknown`] and
/// round-trip unchanged. Equality and hashing go by the code, so
/// `Reason::Unknown(0) == Reason::Normal`; [`Reason::from`] always picks the
/// named variant.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Reason {
    /// 0: orderly close, nothing went wrong.
    Normal,
    /// 1: the peer sent something malformed or out of place.
    ProtocolError,
    /// 2: a frame exceeded the receiver's `max_frame_size`.
    FrameTooLarge,
    /// 3: the protocol version is not supported.
    UnsupportedVersion,
    /// 4: the socket types cannot talk to each other (say REQ to PUB).
    IncompatibleSocket,
    /// 5: the authentication hook refused the peer.
    AuthRejected,
    /// 6: the handshake did not finish in time.
    HandshakeTimeout,
    /// 7: the socket is shutting down.
    Shutdown,
    /// 8: the sender hit an internal error.
    Internal,
    /// 9: the sender is overloaded and sheds this connection.
    Overloaded,
    /// 10: the socket already has every peer it takes (a PAIR socket has
    /// its one peer).
    Occupied,
    /// 11: another principal holds this identity: a connection announcing an
    /// identity that is already connected, from a peer that did not
    /// authenticate as the connected one (another certificate, another
    /// token, or none), is refused rather than displacing it.
    IdentityInUse,
    /// Any other code, kept as received.
    Unknown(u16),
}

impl Reason {
    /// The wire code.
    pub const fn code(self) -> u16 {
        match self {
            Reason::Normal => 0,
            Reason::ProtocolError => 1,
            Reason::FrameTooLarge => 2,
            Reason::UnsupportedVersion => 3,
            Reason::IncompatibleSocket => 4,
            Reason::AuthRejected => 5,
            Reason::HandshakeTimeout => 6,
            Reason::Shutdown => 7,
            Reason::Internal => 8,
            Reason::Overloaded => 9,
            Reason::Occupied => 10,
            Reason::IdentityInUse => 11,
            Reason::Unknown(code) => code,
        }
    }

    /// The reason with wire code `code`; unknown codes become
    /// [`Reason::Unknown`].
    pub const fn from_code(code: u16) -> Self {
        match code {
            0 => Reason::Normal,
            1 => Reason::ProtocolError,
            2 => Reason::FrameTooLarge,
            3 => Reason::UnsupportedVersion,
            4 => Reason::IncompatibleSocket,
            5 => Reason::AuthRejected,
            6 => Reason::HandshakeTimeout,
            7 => Reason::Shutdown,
            8 => Reason::Internal,
            9 => Reason::Overloaded,
            10 => Reason::Occupied,
            11 => Reason::IdentityInUse,
            other => Reason::Unknown(other),
        }
    }
}

impl PartialEq for Reason {
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
    }
}

impl Eq for Reason {}

impl std::hash::Hash for Reason {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state);
    }
}

impl From<u16> for Reason {
    fn from(code: u16) -> Self {
        Reason::from_code(code)
    }
}

impl From<Reason> for u16 {
    fn from(reason: Reason) -> u16 {
        reason.code()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match Reason::from_code(self.code()) {
            Reason::Normal => "normal close",
            Reason::ProtocolError => "protocol error",
            Reason::FrameTooLarge => "frame too large",
            Reason::UnsupportedVersion => "unsupported protocol version",
            Reason::IncompatibleSocket => "incompatible socket type",
            Reason::AuthRejected => "authentication rejected",
            Reason::HandshakeTimeout => "handshake timed out",
            Reason::Shutdown => "shutting down",
            Reason::Internal => "internal error",
            Reason::Overloaded => "overloaded",
            Reason::Occupied => "socket occupied",
            Reason::IdentityInUse => "identity in use by another principal",
            Reason::Unknown(code) => return write!(f, "unknown reason {code}"),
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip() {
        for code in 0..=u8::MAX {
            match FrameKind::try_from(code) {
                Ok(kind) => assert_eq!(kind.code(), code),
                Err(WireError::UnknownKind(c)) => {
                    assert_eq!(c, code);
                    assert!(code == 0 || code > 0x0C);
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }

    #[test]
    fn reason_codes_round_trip_including_unknown() {
        for code in [0u16, 1, 5, 9, 10, 11, 999, u16::MAX] {
            assert_eq!(u16::from(Reason::from(code)), code);
        }
        assert_eq!(Reason::from(42), Reason::Unknown(42));
        assert_eq!(Reason::Unknown(2), Reason::FrameTooLarge);
        assert_eq!(Reason::from(3).to_string(), "unsupported protocol version");
        assert_eq!(Reason::from(4242).to_string(), "unknown reason 4242");
    }

    #[test]
    fn payload_accessor_covers_payload_kinds() {
        let p = Bytes::from_static(b"x");
        let frames = [
            Frame::Request {
                id: 1,
                payload: p.clone(),
            },
            Frame::Reply {
                id: 1,
                payload: p.clone(),
            },
            Frame::Publish {
                topic: Bytes::new(),
                seq: 0,
                payload: p.clone(),
            },
            Frame::Data {
                seq: 0,
                payload: p.clone(),
            },
            Frame::Message { payload: p.clone() },
            Frame::Part { payload: p.clone() },
        ];
        for f in &frames {
            assert_eq!(f.payload(), Some(&p));
            assert!(f.kind().has_payload());
        }
        let f = Frame::Ping { nonce: 3 };
        assert_eq!(f.payload(), None);
        assert!(!f.kind().has_payload());
    }
}
