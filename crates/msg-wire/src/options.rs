//! Limits and defaults shared by the frame and handshake codecs.

use crate::compression::Compression;

/// Default largest frame body and decompressed payload: 64 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

/// Default smallest payload that [`FrameCodec::encode`](crate::FrameCodec::encode)
/// compresses: 1 KiB.
pub const DEFAULT_COMPRESS_MIN_SIZE: usize = 1024;

/// Default largest handshake auth token: 4 KiB.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 4096;

/// Largest handshake auth token the wire can carry (its length is a `u16`).
pub const MAX_TOKEN_SIZE_LIMIT: usize = u16::MAX as usize;

/// Largest frame body the wire can carry (its length is a `u32`).
const WIRE_MAX_BODY: usize = {
    // On 16-bit targets usize cannot hold u32::MAX; saturate there.
    if (u32::MAX as u64) > (usize::MAX as u64) {
        usize::MAX
    } else {
        u32::MAX as usize
    }
};

/// Limits and defaults for encoding and decoding.
///
/// The defaults are safe to expose to an untrusted peer: no frame or
/// decompressed payload over 64 MiB, no auth token over 4 KiB, no
/// compression unless asked for.
///
/// Both sides of a connection should agree on the limits: a frame that the
/// sender can encode but the receiver refuses closes the connection.
///
/// ```
/// use msg_wire::{Compression, FrameCodec, WireOptions};
///
/// let mut opts = WireOptions::new();
/// opts.max_frame_size(1024 * 1024)
///     .compression(Compression::Lz4)
///     .compress_min_size(4096);
/// let codec = FrameCodec::with_options(opts);
/// assert_eq!(codec.options().get_max_frame_size(), 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct WireOptions {
    max_frame_size: usize,
    compression: Compression,
    compress_min_size: usize,
    max_token_size: usize,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            compression: Compression::None,
            compress_min_size: DEFAULT_COMPRESS_MIN_SIZE,
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
        }
    }
}

impl WireOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Largest frame body accepted from or sent to a peer, in bytes; also the
    /// largest size a compressed payload may expand to.
    ///
    /// The body is everything after the 7-byte header. A peer declaring a
    /// larger frame is refused with
    /// [`WireError::FrameTooLarge`](crate::WireError::FrameTooLarge) as soon
    /// as the length arrives, so this is also the most memory one connection's
    /// read buffer can be made to hold (plus the header). Raising it lets
    /// peers send bigger messages at the price of more memory per
    /// connection an attacker can pin.
    ///
    /// Values above `u32::MAX` are clamped to it (the length field is 32
    /// bits). Default: 64 MiB ([`DEFAULT_MAX_FRAME_SIZE`]).
    pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
        self.max_frame_size = bytes.min(WIRE_MAX_BODY);
        self
    }

    /// Compression used by [`FrameCodec::encode`](crate::FrameCodec::encode)
    /// and the tokio-util `Encoder` when the caller does not choose one.
    ///
    /// Only frames that carry a payload (Request, Reply, Publish, Data) are
    /// compressed, and only when the payload is at least
    /// [`compress_min_size`](Self::compress_min_size) bytes and compression
    /// actually makes it smaller. The peer must have the algorithm's cargo
    /// feature enabled: v1 does not negotiate compression. Default:
    /// [`Compression::None`].
    pub fn compression(&mut self, compression: Compression) -> &mut Self {
        self.compression = compression;
        self
    }

    /// Smallest payload, in bytes, that the encoder compresses.
    ///
    /// Shorter payloads go out as they are: below about a kilobyte the CPU
    /// spent rarely pays for the bytes saved, and the 4-byte original length
    /// eats into the gain. Default: 1024 ([`DEFAULT_COMPRESS_MIN_SIZE`]).
    pub fn compress_min_size(&mut self, bytes: usize) -> &mut Self {
        self.compress_min_size = bytes;
        self
    }

    /// Largest auth token accepted in, or encoded into, a handshake Hello,
    /// in bytes.
    ///
    /// A longer token is refused with
    /// [`WireError::TokenTooLong`](crate::WireError::TokenTooLong) before
    /// any of it is buffered. Values above 65535 are clamped to it (the
    /// length field is 16 bits). Default: 4096 ([`DEFAULT_MAX_TOKEN_SIZE`]).
    pub fn max_token_size(&mut self, bytes: usize) -> &mut Self {
        self.max_token_size = bytes.min(MAX_TOKEN_SIZE_LIMIT);
        self
    }

    /// The configured largest frame body, in bytes.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The configured default compression.
    pub fn get_compression(&self) -> Compression {
        self.compression
    }

    /// The configured smallest compressed payload, in bytes.
    pub fn get_compress_min_size(&self) -> usize {
        self.compress_min_size
    }

    /// The configured largest auth token, in bytes.
    pub fn get_max_token_size(&self) -> usize {
        self.max_token_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let o = WireOptions::new();
        assert_eq!(o.get_max_frame_size(), 64 * 1024 * 1024);
        assert_eq!(o.get_compression(), Compression::None);
        assert_eq!(o.get_compress_min_size(), 1024);
        assert_eq!(o.get_max_token_size(), 4096);
    }

    #[test]
    fn setters_clamp_to_wire_limits() {
        let mut o = WireOptions::new();
        o.max_token_size(1 << 20).max_frame_size(usize::MAX);
        assert_eq!(o.get_max_token_size(), 65535);
        assert_eq!(
            o.get_max_frame_size() as u64,
            u64::from(u32::MAX).min(usize::MAX as u64)
        );
    }
}
