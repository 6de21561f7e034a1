//! Decompression bombs are errors, never allocations: a declared length
//! over the limit is refused before any work, and a payload that expands
//! past its declared length is stopped one byte past it.
//!
//! gzip and zstd bombs expand to 100 MiB; they are built by streaming zeros
//! through the compressor, never holding the input. snappy and lz4 cannot
//! stream a raw block, so theirs expand to 8 MiB against a 1 MiB limit.
//!
//! The `*_allocates_*` tests count what decoding a bomb really allocates
//! (`common::alloc`) against a 64 KiB limit: the declared output, at most
//! the limit, plus the decompressor's fixed working memory.

#![allow(dead_code)]

use crate::common;
use crate::common::alloc::{self, peak_during};

use bytes::{BufMut, BytesMut};
use msg_wire::{Compression, FrameCodec, WireError, WireOptions, compression};

/// Limit used by these tests.
const LIMIT: usize = 1024 * 1024;
const MIB: usize = 1024 * 1024;

fn codec() -> FrameCodec {
    let mut opts = WireOptions::new();
    opts.max_frame_size(LIMIT);
    FrameCodec::with_options(opts)
}

/// A Request frame whose payload is `compressed`, declared to expand to
/// `declared` bytes.
fn bomb_frame(alg: Compression, declared: u32, compressed: &[u8]) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_u64(42);
    body.put_u32(declared);
    body.extend_from_slice(compressed);
    assert!(body.len() <= LIMIT, "the bomb itself must fit in a frame");
    common::raw_frame(0x01, alg.id(), &body)
}

/// Streams `n` zero bytes into `w` without allocating them.
fn write_zeros(mut w: impl std::io::Write, n: usize) {
    let chunk = [0u8; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        w.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
}

/// The three checks every algorithm gets:
/// - declared length over the limit: `DecompressedTooLarge` before any work;
/// - declared small, real output huge: an error, not an allocation;
/// - declared larger than the real output: an error.
fn check_bomb(alg: Compression, bomb: &[u8], real_len: usize) {
    let declared_huge = u32::try_from(real_len).unwrap();
    let err = codec()
        .decode(&mut bomb_frame(alg, declared_huge, bomb))
        .unwrap_err();
    assert!(
        matches!(err, WireError::DecompressedTooLarge { len, max: LIMIT } if len == u64::from(declared_huge)),
        "{alg} honest bomb: {err:?}"
    );

    let err = codec()
        .decode(&mut bomb_frame(alg, 1000, bomb))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::DecompressedTooLarge { .. } | WireError::Decompress(_)
        ),
        "{alg} lying bomb: {err:?}"
    );

    // Declared at the limit: allowed to allocate LIMIT, must still fail.
    let err = codec()
        .decode(&mut bomb_frame(alg, LIMIT as u32, bomb))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::DecompressedTooLarge { .. } | WireError::Decompress(_)
        ),
        "{alg} bomb at the limit: {err:?}"
    );

    // The standalone function holds the same line.
    assert!(compression::decompress(alg, bomb, real_len, LIMIT).is_err());
    assert!(compression::decompress(alg, bomb, 1000, LIMIT).is_err());
}

/// A small honest payload decodes, and claiming more than it holds fails.
fn check_short_output(alg: Compression) {
    let data = vec![7u8; 5000];
    let packed = compression::compress(alg, &data).unwrap();
    let ok = codec()
        .decode(&mut bomb_frame(alg, 5000, &packed))
        .unwrap()
        .unwrap();
    assert_eq!(ok.payload().map(|p| p.len()), Some(5000));
    let err = codec()
        .decode(&mut bomb_frame(alg, 5001, &packed))
        .unwrap_err();
    assert!(matches!(err, WireError::Decompress(_)), "{alg}: {err:?}");
    let err = codec()
        .decode(&mut bomb_frame(alg, 4999, &packed))
        .unwrap_err();
    assert!(
        matches!(
            err,
            WireError::DecompressedTooLarge { .. } | WireError::Decompress(_)
        ),
        "{alg}: {err:?}"
    );
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_bomb_is_refused() {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    write_zeros(&mut enc, 100 * MIB);
    let bomb = enc.finish().unwrap();
    check_bomb(Compression::Gzip, &bomb, 100 * MIB);
    check_short_output(Compression::Gzip);
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_bomb_is_refused() {
    // Streamed without a pledged size: the frame does not state its
    // content size, so only the bounded output buffer stops it.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    write_zeros(&mut enc, 100 * MIB);
    let bomb = enc.finish().unwrap();
    check_bomb(Compression::Zstd, &bomb, 100 * MIB);

    // One that states its size (as our encoder's frames do).
    let stated = zstd::bulk::compress(&vec![0u8; 8 * MIB], 1).unwrap();
    check_bomb(Compression::Zstd, &stated, 8 * MIB);
    check_short_output(Compression::Zstd);
}

#[cfg(feature = "snappy")]
#[test]
fn snappy_bomb_is_refused() {
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 8 * MIB])
        .unwrap();
    check_bomb(Compression::Snappy, &bomb, 8 * MIB);
    check_short_output(Compression::Snappy);
}

#[cfg(feature = "lz4")]
#[test]
fn lz4_bomb_is_refused() {
    let bomb = lz4_flex::block::compress(&vec![0u8; 8 * MIB]);
    check_bomb(Compression::Lz4, &bomb, 8 * MIB);
    check_short_output(Compression::Lz4);
}

#[test]
fn declared_length_is_checked_before_decompressing() {
    // Garbage "compressed" bytes with a huge declaration: the declaration is
    // what fails, so no decoder ever sees them.
    for alg in common::available_compressions() {
        if alg == Compression::None {
            continue;
        }
        let err = codec()
            .decode(&mut bomb_frame(alg, u32::MAX, b"not compressed at all"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                WireError::DecompressedTooLarge {
                    len: 0xffff_ffff,
                    max: LIMIT
                }
            ),
            "{alg}: {err:?}"
        );
    }
}

/// Limit for the allocation checks: small, so that a decoder allocating in
/// proportion to what a bomb expands to, rather than to the limit, shows.
const SMALL_LIMIT: usize = 64 * 1024;

/// Decode `bomb` in a frame under [`SMALL_LIMIT`], declared to expand to
/// the limit, to 1000 bytes and to 4 GiB, and check that each attempt fails
/// having allocated at most the limit plus the decompressor's overhead.
/// Returns the largest peak seen.
fn check_bomb_allocations(alg: Compression, bomb: &[u8]) -> usize {
    let mut opts = WireOptions::new();
    opts.max_frame_size(SMALL_LIMIT);
    let mut codec = FrameCodec::with_options(opts);
    let bound = SMALL_LIMIT + alloc::decompressor_overhead(alg, bomb.len()) + alloc::SMALL;
    let mut worst = 0;
    for declared in [SMALL_LIMIT as u32, 1000, u32::MAX] {
        let mut src = bomb_frame(alg, declared, bomb);
        assert!(src.len() <= SMALL_LIMIT, "the bomb must fit in a frame");
        let (result, peak) = peak_during(|| codec.decode(&mut src));
        assert!(
            matches!(
                result,
                Err(WireError::DecompressedTooLarge { .. } | WireError::Decompress(_))
            ),
            "{alg}, declared {declared}: {result:?}"
        );
        assert!(
            peak <= bound,
            "{alg}, declared {declared}: {peak} bytes allocated, bound {bound}"
        );
        if declared == u32::MAX {
            // Refused on the declaration alone.
            assert!(
                peak <= alloc::SMALL,
                "{alg}: {peak} bytes for a 4 GiB claim"
            );
        }
        worst = worst.max(peak);
    }
    worst
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_bomb_allocates_at_most_the_limit_and_the_inflate_state() {
    // 16 MiB of zeros in 16 KiB.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    write_zeros(&mut enc, 16 * MIB);
    let bomb = enc.finish().unwrap();
    let worst = check_bomb_allocations(Compression::Gzip, &bomb);
    // No header fields here, so the bound is exactly limit plus state.
    assert!(
        worst <= SMALL_LIMIT + alloc::GZIP_STATE + alloc::SMALL,
        "{worst}"
    );

    // The same with the gzip header's name, comment and extra fields filled:
    // flate2 copies them out, which costs a few times their size (they are
    // part of the input, so bounded by the frame) and nothing more.
    let mut enc = flate2::GzBuilder::new()
        .filename(vec![b'n'; 19 * 1024])
        .comment(vec![b'c'; 19 * 1024])
        .extra(vec![b'x'; 19 * 1024])
        .write(Vec::new(), flate2::Compression::best());
    write_zeros(&mut enc, 4 * MIB);
    let bomb = enc.finish().unwrap();
    check_bomb_allocations(Compression::Gzip, &bomb);
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_bomb_allocates_at_most_the_limit() {
    // zstd's own context is `malloc`ed, invisible here; its size is checked
    // with ZSTD_sizeof_DCtx in the unit tests of src/compression.rs. What
    // Rust allocates is the output buffer and nothing else.
    for window_log in [0, 27] {
        // Hides its content size, so only the bounded output stops it; the
        // second also claims a 128 MiB window, which single-shot
        // decompression never allocates (0 keeps the level's default).
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(window_log).unwrap();
        write_zeros(&mut enc, 100 * MIB);
        let bomb = enc.finish().unwrap();
        check_bomb_allocations(Compression::Zstd, &bomb);
    }
    // States its content size: refused before decompressing.
    let stated = zstd::bulk::compress(&vec![0u8; 8 * MIB], 1).unwrap();
    let worst = check_bomb_allocations(Compression::Zstd, &stated);
    assert!(worst <= alloc::SMALL, "{worst}");
}

#[cfg(feature = "snappy")]
#[test]
fn snappy_bomb_allocates_nothing() {
    // A raw snappy block states its length; a block stating more than the
    // frame declares is refused before the output is allocated. (snappy
    // expands at most about 21 times, so 1 MiB is the bomb that fits.)
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; MIB])
        .unwrap();
    let worst = check_bomb_allocations(Compression::Snappy, &bomb);
    assert!(worst <= alloc::SMALL, "{worst}");
}

#[cfg(feature = "lz4")]
#[test]
fn lz4_bomb_allocates_at_most_the_limit() {
    let bomb = lz4_flex::block::compress(&vec![0u8; 8 * MIB]);
    let worst = check_bomb_allocations(Compression::Lz4, &bomb);
    assert!(worst <= SMALL_LIMIT + alloc::SMALL, "{worst}");
}
