//! Payload compression: the algorithm enum and bounded compress/decompress
//! functions.
//!
//! Dispatch is a `match` on [`Compression`]; there is no trait object on the
//! hot path. Each algorithm sits behind a cargo feature of the same name
//! (`gzip`, `zstd`, `snappy`, `lz4`); a disabled algorithm still has its
//! variant and id (so the wire format never changes with features) but
//! [`compress`] and [`decompress`] return
//! [`WireError::CompressionUnavailable`] for it.
//!
//! Every decompressor is given the exact output length up front and never
//! produces more: a decompression bomb is an error, not an out-of-memory
//! abort. Besides the output buffer each needs only fixed working memory,
//! whatever the data claims: none for snappy and lz4, a zstd context of
//! about 95 KiB (single-shot, so no window buffer), and for gzip an inflate
//! state of about 43 KiB plus the gzip header's optional name, comment and
//! extra fields, which are part of the compressed input.
//!
//! | algorithm | id | format | level |
//! |---|---|---|---|
//! | none | 0 | — | — |
//! | gzip | 1 | RFC 1952 gzip member | 1 (fastest) |
//! | zstd | 2 | zstd frame(s) | 1 (fastest non-negative) |
//! | snappy | 3 | raw snappy block (no framing format) | — |
//! | lz4 | 4 | raw LZ4 block, no size prefix | — |

use std::fmt;
use std::io;

use bytes::Bytes;

use crate::error::WireError;

/// A payload compression algorithm.
///
/// The id (see [`Compression::id`]) is what travels in bits 0..=2 of a
/// frame's flags byte. Compression levels are fixed at fast settings; see
/// the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// No compression (id 0). The default.
    #[default]
    None,
    /// gzip (id 1), feature `gzip`.
    Gzip,
    /// Zstandard (id 2), feature `zstd`.
    Zstd,
    /// Snappy, raw block format (id 3), feature `snappy`.
    Snappy,
    /// LZ4, raw block format (id 4), feature `lz4`.
    Lz4,
}

impl Compression {
    /// Every algorithm, available or not, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Lz4,
    ];

    /// The wire id of the algorithm (0 to 4).
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Zstd => 2,
            Compression::Snappy => 3,
            Compression::Lz4 => 4,
        }
    }

    /// The algorithm with wire id `id`.
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownCompression`] for an id above 4.
    pub const fn from_id(id: u8) -> Result<Self, WireError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Zstd),
            3 => Ok(Compression::Snappy),
            4 => Ok(Compression::Lz4),
            other => Err(WireError::UnknownCompression(other)),
        }
    }

    /// Whether this build can compress and decompress with the algorithm,
    /// that is, whether its cargo feature is enabled. Always true for
    /// [`Compression::None`].
    pub const fn is_available(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Zstd => cfg!(feature = "zstd"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
        }
    }

    /// Lowercase name of the algorithm, as used by `Display`: `"none"`,
    /// `"gzip"`, `"zstd"`, `"snappy"` or `"lz4"`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for Compression {
    type Error = WireError;

    fn try_from(id: u8) -> Result<Self, WireError> {
        Compression::from_id(id)
    }
}

impl From<Compression> for u8 {
    fn from(c: Compression) -> u8 {
        c.id()
    }
}

/// Compress `input` with `alg`.
///
/// Returns the bare compressed bytes, without the 4-byte original length
/// that precedes them in a frame. [`Compression::None`] returns a copy of
/// `input`.
///
/// # Errors
///
/// - [`WireError::CompressionUnavailable`] if the algorithm's feature is
///   disabled.
/// - [`WireError::Compress`] if the compressor fails (for instance, snappy
///   refuses inputs of 4 GiB or more).
pub fn compress(alg: Compression, input: &[u8]) -> Result<Bytes, WireError> {
    if !alg.is_available() {
        return Err(WireError::CompressionUnavailable(alg));
    }
    match alg {
        Compression::None => Ok(Bytes::copy_from_slice(input)),
        #[cfg(feature = "gzip")]
        Compression::Gzip => imp::gzip_compress(input),
        #[cfg(feature = "zstd")]
        Compression::Zstd => imp::zstd_compress(input),
        #[cfg(feature = "snappy")]
        Compression::Snappy => imp::snappy_compress(input),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => Ok(imp::lz4_compress(input)),
        #[allow(unreachable_patterns)]
        _ => Err(WireError::CompressionUnavailable(alg)),
    }
}

/// Decompress `input`, which must expand to exactly `original_len` bytes.
///
/// `original_len` is checked against `max` before anything is allocated;
/// then exactly `original_len` bytes are allocated and the decompressor is
/// not allowed to write past them. [`Compression::None`] checks that
/// `input` is `original_len` bytes long and copies it.
///
/// # Errors
///
/// - [`WireError::DecompressedTooLarge`] if `original_len > max`, or if the
///   data would expand past `original_len` (a lying or hostile sender).
/// - [`WireError::Decompress`] if the data is corrupt or expands to fewer
///   than `original_len` bytes.
/// - [`WireError::CompressionUnavailable`] if the algorithm's feature is
///   disabled.
pub fn decompress(
    alg: Compression,
    input: &[u8],
    original_len: usize,
    max: usize,
) -> Result<Bytes, WireError> {
    if original_len > max {
        return Err(WireError::DecompressedTooLarge {
            len: original_len as u64,
            max,
        });
    }
    if !alg.is_available() {
        return Err(WireError::CompressionUnavailable(alg));
    }
    match alg {
        Compression::None => {
            if input.len() == original_len {
                Ok(Bytes::copy_from_slice(input))
            } else {
                Err(length_mismatch())
            }
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => imp::gzip_decompress(input, original_len),
        #[cfg(feature = "zstd")]
        Compression::Zstd => imp::zstd_decompress(input, original_len),
        #[cfg(feature = "snappy")]
        Compression::Snappy => imp::snappy_decompress(input, original_len),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => imp::lz4_decompress(input, original_len),
        #[allow(unreachable_patterns)]
        _ => Err(WireError::CompressionUnavailable(alg)),
    }
}

/// The error for output shorter than declared.
fn length_mismatch() -> WireError {
    WireError::Decompress(io::Error::new(
        io::ErrorKind::InvalidData,
        "decompressed length differs from the declared length",
    ))
}

/// The error for output longer than declared: the sender lied about the
/// original length, which is how a bomb disguises itself.
#[cfg(any(
    feature = "gzip",
    feature = "zstd",
    feature = "snappy",
    feature = "lz4"
))]
fn too_long(original_len: usize) -> WireError {
    WireError::DecompressedTooLarge {
        // Report "at least one byte more than declared"; the real size is
        // never computed, that is the point.
        len: (original_len as u64).saturating_add(1),
        max: original_len,
    }
}

#[cfg(any(
    feature = "gzip",
    feature = "zstd",
    feature = "snappy",
    feature = "lz4"
))]
mod imp {
    //! One compress/decompress pair per algorithm, each behind its feature.

    use std::io;
    #[cfg(feature = "gzip")]
    use std::io::{Read, Write};

    use bytes::Bytes;

    use super::{length_mismatch, too_long};
    use crate::error::WireError;

    #[allow(dead_code)]
    fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> WireError {
        WireError::Decompress(io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Fill `out` completely from `reader`, then make sure the reader has
    /// nothing more to give.
    ///
    /// The final one-byte read is what makes the output bounded: we never
    /// ask the decoder for more than `out.len() + 1` bytes in total, so a
    /// stream that expands to gigabytes costs us one extra byte of work
    /// before it is refused. For gzip it also drives the decoder to the end
    /// of the member so the CRC and length trailer are verified.
    #[cfg(feature = "gzip")]
    fn read_exactly(mut reader: impl Read, out: &mut [u8]) -> Result<(), WireError> {
        let original_len = out.len();
        let mut filled = 0usize;
        while let Some(rest) = out.get_mut(filled..) {
            if rest.is_empty() {
                break;
            }
            match reader.read(rest) {
                Ok(0) => return Err(length_mismatch()),
                // `read` never reports more than it was given, so `filled`
                // stays within `out.len()`.
                Ok(n) => filled = filled.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Decompress(e)),
            }
        }
        let mut probe = [0u8; 1];
        loop {
            match reader.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(too_long(original_len)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Decompress(e)),
            }
        }
    }

    // ----- gzip -------------------------------------------------------------

    #[cfg(feature = "gzip")]
    pub(super) fn gzip_compress(input: &[u8]) -> Result<Bytes, WireError> {
        // A gzip member adds an 18-byte header and trailer; start with room
        // for a modest ratio and let the Vec grow if the data is incompressible.
        let out = Vec::with_capacity(input.len() / 2 + 32);
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        enc.write_all(input).map_err(WireError::Compress)?;
        enc.finish().map(Bytes::from).map_err(WireError::Compress)
    }

    #[cfg(feature = "gzip")]
    pub(super) fn gzip_decompress(input: &[u8], original_len: usize) -> Result<Bytes, WireError> {
        let mut out = vec![0u8; original_len];
        // The `bufread` decoder reads the slice in place; `read::GzDecoder`
        // would first copy it through a 32 KiB `BufReader` of its own. What
        // remains besides `out` is miniz_oxide's inflate state (about 43 KiB,
        // its 32 KiB window included) and the gzip header's optional name,
        // comment and extra fields, which flate2 copies out: each is capped
        // at 64 KiB by flate2 and is part of the compressed input, so they
        // cost a few times that input at most (a field grows by doubling).
        read_exactly(flate2::bufread::GzDecoder::new(input), &mut out)?;
        Ok(Bytes::from(out))
    }

    // ----- zstd -------------------------------------------------------------

    /// zstd level 1: the fastest of the regular levels, still a good ratio
    /// on the repetitive payloads messaging tends to carry.
    #[cfg(feature = "zstd")]
    const ZSTD_LEVEL: i32 = 1;

    #[cfg(feature = "zstd")]
    pub(super) fn zstd_compress(input: &[u8]) -> Result<Bytes, WireError> {
        // The bulk API tells zstd the input size, so the frame records its
        // content size and uses a window no larger than the input.
        zstd::bulk::compress(input, ZSTD_LEVEL)
            .map(Bytes::from)
            .map_err(WireError::Compress)
    }

    #[cfg(feature = "zstd")]
    pub(super) fn zstd_decompress(input: &[u8], original_len: usize) -> Result<Bytes, WireError> {
        let mut dctx = zstd::zstd_safe::DCtx::try_create().ok_or_else(|| {
            WireError::Decompress(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cannot allocate a zstd context",
            ))
        })?;
        zstd_decompress_with(&mut dctx, input, original_len)
    }

    /// [`zstd_decompress`] with a given context, so that tests can ask zstd
    /// how much memory the context ended up holding: zstd allocates through
    /// `malloc`, out of sight of Rust's allocator.
    #[cfg(feature = "zstd")]
    pub(super) fn zstd_decompress_with(
        dctx: &mut zstd::zstd_safe::DCtx<'_>,
        input: &[u8],
        original_len: usize,
    ) -> Result<Bytes, WireError> {
        // Single-shot decompression straight into a buffer of exactly the
        // declared size. zstd refuses (dstSize_tooSmall) to write past it,
        // and unlike the streaming decoder it needs no window buffer of its
        // own, so a frame header claiming a huge window costs nothing: the
        // context stays at its fixed size (about 95 KiB with zstd 1.5).
        //
        // A frame that states its content size (ours always do) and states
        // more than declared is refused before any work; one that hides its
        // size is refused by zstd with a "destination too small" error.
        if let Ok(Some(stated)) = zstd::zstd_safe::get_frame_content_size(input) {
            if stated > original_len as u64 {
                return Err(too_long(original_len));
            }
        }
        let mut out = Vec::with_capacity(original_len);
        match dctx.decompress(&mut out, input) {
            Ok(n) if n == original_len => Ok(Bytes::from(out)),
            Ok(_) => Err(length_mismatch()),
            Err(code) => Err(WireError::Decompress(io::Error::other(
                zstd::zstd_safe::get_error_name(code),
            ))),
        }
    }

    // ----- snappy -----------------------------------------------------------

    #[cfg(feature = "snappy")]
    pub(super) fn snappy_compress(input: &[u8]) -> Result<Bytes, WireError> {
        snap::raw::Encoder::new()
            .compress_vec(input)
            .map(Bytes::from)
            .map_err(|e| WireError::Compress(e.into()))
    }

    #[cfg(feature = "snappy")]
    pub(super) fn snappy_decompress(input: &[u8], original_len: usize) -> Result<Bytes, WireError> {
        // A raw snappy block starts with its own uncompressed length. It must
        // agree with the frame's declaration; checking it first means we
        // never size a buffer from the block's claim.
        let stated = snap::raw::decompress_len(input).map_err(invalid)?;
        if stated > original_len {
            return Err(too_long(original_len));
        }
        if stated != original_len {
            return Err(length_mismatch());
        }
        let mut out = vec![0u8; original_len];
        let n = snap::raw::Decoder::new()
            .decompress(input, &mut out)
            .map_err(invalid)?;
        if n != original_len {
            return Err(length_mismatch());
        }
        Ok(Bytes::from(out))
    }

    // ----- lz4 --------------------------------------------------------------

    #[cfg(feature = "lz4")]
    pub(super) fn lz4_compress(input: &[u8]) -> Bytes {
        Bytes::from(lz4_flex::block::compress(input))
    }

    #[cfg(feature = "lz4")]
    pub(super) fn lz4_decompress(input: &[u8], original_len: usize) -> Result<Bytes, WireError> {
        // A raw LZ4 block does not know its own length, so the declared one
        // sizes the output and the decoder fails rather than write past it.
        let mut out = vec![0u8; original_len];
        match lz4_flex::block::decompress_into(input, &mut out) {
            Ok(n) if n == original_len => Ok(Bytes::from(out)),
            Ok(_) => Err(length_mismatch()),
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                Err(too_long(original_len))
            }
            Err(e) => Err(invalid(e)),
        }
    }
}

#[cfg(all(test, feature = "zstd"))]
mod tests {
    use std::io::Write;

    use super::*;

    /// Most memory a zstd decompression context may hold, in bytes.
    ///
    /// zstd allocates through `malloc`, so the integration tests' counting
    /// allocator cannot see it; zstd reports it itself with
    /// `ZSTD_sizeof_DCtx`. A context is about 95 KiB with zstd 1.5 (entropy
    /// tables and a 64 KiB literals buffer), and single-shot decompression
    /// never adds a window buffer to it.
    const ZSTD_DCTX_BOUND: usize = 128 * 1024;

    #[test]
    fn zstd_context_stays_fixed_whatever_window_a_frame_claims() {
        // A bomb that hides its content size and asks for a 128 MiB window:
        // the streaming decoder would allocate that window up front.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        enc.window_log(27).unwrap();
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&bomb),
            Ok(None)
        ));

        let mut dctx = zstd::zstd_safe::DCtx::create();
        let fresh = dctx.sizeof();
        assert!(fresh <= ZSTD_DCTX_BOUND, "fresh context: {fresh} bytes");
        for declared in [1000, 64 * 1024, 1 << 20] {
            let err = imp::zstd_decompress_with(&mut dctx, &bomb, declared).unwrap_err();
            assert!(matches!(err, WireError::Decompress(_)), "{err:?}");
            assert_eq!(dctx.sizeof(), fresh, "declared {declared}");
        }

        // And an honest payload through the same context.
        let packed = compress(Compression::Zstd, &[7u8; 5000]).unwrap();
        let out = imp::zstd_decompress_with(&mut dctx, &packed, 5000).unwrap();
        assert_eq!(&out[..], &[7u8; 5000][..]);
        assert_eq!(dctx.sizeof(), fresh);
    }
}
