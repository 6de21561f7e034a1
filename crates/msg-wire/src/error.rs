//! The one error type of this crate.

use std::io;

use crate::compression::Compression;
use crate::frame::{PROTOCOL_VERSION, Reason};

/// Everything that can go wrong while encoding or decoding msg wire data.
///
/// Errors returned by a decoder mean the peer sent something this side will
/// not accept: the connection it came from should be closed (after sending
/// a `Close` frame or a handshake rejection carrying [`WireError::reason`],
/// where the stream is still usable). Errors returned by an encoder mean the
/// local caller asked for something the protocol cannot carry; the
/// connection itself is unaffected.
///
/// Waiting for more input is never an error: decoders return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing the underlying stream failed.
    ///
    /// Only produced by the tokio-util `Decoder`/`Encoder` glue, which needs
    /// an error type that can carry I/O failures.
    #[error("i/o error on the connection")]
    Io(#[from] io::Error),

    /// A frame's body is longer than the configured `max_frame_size`.
    ///
    /// Returned by the decoder as soon as the four length bytes are in,
    /// before anything is buffered for the body, and by the encoder for a
    /// frame that would be too large for the peer.
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Declared (decoder) or computed (encoder) body length in bytes.
        len: u64,
        /// The configured limit in bytes.
        max: usize,
    },

    /// A compressed payload declares, or actually produces, more bytes than
    /// the configured `max_frame_size`.
    #[error("decompressed payload of {len} bytes exceeds the limit of {max} bytes")]
    DecompressedTooLarge {
        /// Declared original length in bytes.
        len: u64,
        /// The configured limit in bytes.
        max: usize,
    },

    /// The peer speaks a protocol version this build does not (the peer's
    /// version is carried; this build's is [`PROTOCOL_VERSION`]).
    #[error("unsupported protocol version {0} (this side speaks version {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),

    /// The frame kind byte names no known kind.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),

    /// The compression bits of the flags byte name no known algorithm.
    #[error("unknown compression algorithm id {0}")]
    UnknownCompression(u8),

    /// The algorithm is known but its cargo feature is disabled in this
    /// build.
    #[error("compression algorithm {0} is not enabled in this build")]
    CompressionUnavailable(Compression),

    /// A reserved flag bit is set (the whole flags byte is carried).
    #[error("reserved flag bits set in {0:#010b}")]
    ReservedFlags(u8),

    /// The bytes do not form a valid frame or handshake message: a field
    /// runs past the end of the body, bytes trail a fixed-size body, text is
    /// not UTF-8, a payload-less kind claims compression, and the like.
    #[error("malformed input: {0}")]
    Malformed(&'static str),

    /// A compressed payload could not be decompressed, or decompressed to a
    /// length other than the declared one.
    #[error("payload decompression failed")]
    Decompress(#[source] io::Error),

    /// Compressing an outgoing payload failed.
    #[error("payload compression failed")]
    Compress(#[source] io::Error),

    /// The handshake does not start with the protocol magic: the peer does
    /// not speak this protocol.
    #[error("bad protocol magic")]
    BadMagic,

    /// The handshake names a socket type this build does not know.
    #[error("unknown socket type {0}")]
    UnknownSocketType(u8),

    /// A handshake auth token is longer than `max_token_size`.
    #[error("auth token of {len} bytes exceeds the limit of {max} bytes")]
    TokenTooLong {
        /// Token length in bytes.
        len: usize,
        /// The configured limit in bytes.
        max: usize,
    },

    /// A handshake identity is longer than 255 bytes (encoder only: the
    /// length field is one byte).
    #[error("identity of {0} bytes exceeds the limit of 255 bytes")]
    IdentityTooLong(usize),

    /// A topic is longer than 65535 bytes.
    #[error("topic of {0} bytes exceeds the limit of 65535 bytes")]
    TopicTooLong(usize),

    /// A close or reject reason text is longer than 1024 bytes.
    #[error("reason text of {0} bytes exceeds the limit of 1024 bytes")]
    ReasonTooLong(usize),

    /// A multipart message has more parts than the limit.
    #[error("a message of {parts} parts exceeds the limit of {max} parts")]
    TooManyParts {
        /// Parts in the message (counted up to one past the limit, for one
        /// arriving).
        parts: usize,
        /// The limit.
        max: usize,
    },
}

impl WireError {
    /// The reason code to send the peer before closing the connection
    /// because of this error.
    ///
    /// [`FrameTooLarge`](WireError::FrameTooLarge) maps to
    /// [`Reason::FrameTooLarge`], [`UnsupportedVersion`](WireError::UnsupportedVersion)
    /// to [`Reason::UnsupportedVersion`], failures on this side
    /// ([`Io`](WireError::Io), [`Compress`](WireError::Compress)) to
    /// [`Reason::Internal`], and everything else, which is the peer's fault,
    /// to [`Reason::ProtocolError`].
    pub fn reason(&self) -> Reason {
        match self {
            WireError::FrameTooLarge { .. } => Reason::FrameTooLarge,
            WireError::UnsupportedVersion(_) => Reason::UnsupportedVersion,
            WireError::Io(_) | WireError::Compress(_) => Reason::Internal,
            _ => Reason::ProtocolError,
        }
    }

    /// Whether the error is an I/O failure of the underlying stream rather
    /// than a problem with the bytes themselves.
    ///
    /// After an I/O error there is usually no point in sending the peer a
    /// `Close` frame.
    pub fn is_io(&self) -> bool {
        matches!(self, WireError::Io(_))
    }
}
