//! Real heap accounting for the tests: how many bytes a piece of code keeps
//! live at its worst, counted by the allocator itself rather than read off a
//! buffer's capacity.
//!
//! The counting `#[global_allocator]` comes from the `allocation-counter`
//! crate. Writing our own would need an `unsafe impl GlobalAlloc`, and the
//! workspace sets `unsafe_code = "forbid"`, which no `#[allow]` can lift and
//! which applies to test targets too; a dev-dependency keeps the `unsafe`
//! out of this repository. Linking this module is what installs it: the whole
//! integration binary runs on the counting allocator.
//!
//! The counters are thread-local, so tests running in parallel on other
//! threads do not disturb a measurement. They see every allocation made
//! through Rust's allocator (`Vec`, `Bytes`, `Box`, pure-Rust decoders such
//! as miniz_oxide, snap and lz4_flex), but not memory a C library takes from
//! `malloc` directly: zstd's context is accounted for separately, with zstd's
//! own `ZSTD_sizeof_DCtx` (see the unit tests in `src/compression.rs`).
//!
//! `realloc` is counted as a fresh allocation followed by a free, so growing
//! a buffer counts the old and the new block together, as a copying
//! reallocation really holds them.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use msg_wire::Compression;

/// Run `f` and return its result with the largest number of bytes that `f`
/// held allocated at any one time on this thread, counting only what was
/// allocated during the call (memory freed that was allocated before does
/// not make room for more).
///
/// What `f` returns is still live at the end, so it is part of the peak.
/// A panic in `f` is passed on after the counters are restored.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let mut out = None;
    let info = allocation_counter::measure(|| {
        // `measure` does not restore its counter stack if `f` unwinds, and a
        // proptest run catches panics and keeps going: catch here, rethrow
        // below, so a failing case cannot corrupt the next measurement.
        out = Some(catch_unwind(AssertUnwindSafe(f)));
    });
    let peak = usize::try_from(info.bytes_max).unwrap_or(usize::MAX);
    match out {
        Some(Ok(r)) => (r, peak),
        Some(Err(panic)) => resume_unwind(panic),
        None => unreachable!("measure runs its closure"),
    }
}

#[test]
fn peak_counts_what_is_live_at_once() {
    let ((), peak) = peak_during(|| {
        let a = vec![1u8; 1000];
        drop(std::hint::black_box(a));
        let b = vec![2u8; 600];
        let c = vec![3u8; 300];
        std::hint::black_box((b, c));
    });
    assert_eq!(peak, 1000);

    let (kept, peak) = peak_during(|| vec![0u8; 4096]);
    assert_eq!(kept.len(), 4096);
    assert_eq!(peak, 4096, "the result is live at the end");
}

#[test]
fn other_threads_are_not_counted() {
    let ((), peak) = peak_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(vec![0u8; 1 << 20]));
        });
    });
    // Spawning a thread allocates a little on this one (its handle, name,
    // result slot), but nothing near the megabyte the other thread took.
    assert!(peak < 64 * 1024, "{peak}");
}

#[test]
fn a_panic_inside_does_not_break_later_measurements() {
    // One more than allocation-counter's nesting limit (64).
    for _ in 0..65 {
        let r = catch_unwind(|| peak_during(|| panic!("boom")));
        assert!(r.is_err());
    }
    let ((), peak) = peak_during(|| drop(std::hint::black_box(vec![0u8; 10])));
    assert_eq!(peak, 10);
}

/// Working memory of the gzip decoder besides its output, in bytes:
/// miniz_oxide's inflate state, its 32 KiB window included. Measured at
/// 43,296 bytes with miniz_oxide 0.9; rounded up.
pub const GZIP_STATE: usize = 48 * 1024;

/// What the gzip decoder may hold for a gzip header's optional name,
/// comment and extra fields, given the compressed input's length: flate2
/// copies them out (each capped at 64 KiB). The name and comment are read
/// byte by byte and grow by doubling, so at their worst (old and new block
/// during a copying reallocation) they cost three times their length,
/// which is part of the input. The extra field is different: its length is
/// a 16-bit number in the header, and flate2 reserves room for all of it
/// before its bytes arrive, so a header that declares 65,535 bytes of extra
/// field costs that much whatever the input's length (found by the
/// proptest of `codec_bounded_memory`: 34 bytes of gzip input, 88 KiB of
/// working memory).
pub const fn gzip_header_fields(compressed_len: usize) -> usize {
    const CAP: usize = 3 * 64 * 1024;
    const DECLARED_EXTRA: usize = 64 * 1024;
    DECLARED_EXTRA
        + 3 * if compressed_len < CAP {
            compressed_len
        } else {
            CAP
        }
}

/// Small bookkeeping allocations that come with a decoded message, in
/// bytes: the shared header `Bytes` allocates when a frame is split off
/// the read buffer (40 bytes), zstd's Rust-side wrapper (under 100 bytes),
/// error values.
pub const SMALL: usize = 1024;

/// Working memory, besides its output, that decompressing `compressed_len`
/// bytes with `alg` may allocate through Rust's allocator, in bytes.
///
/// Only gzip needs any: snappy and lz4 write straight into the output
/// buffer, and zstd's context comes from `malloc` (bounded separately, by
/// `ZSTD_DCTX_BOUND` in `src/compression.rs`). Small bookkeeping is left
/// to [`SMALL`].
pub const fn decompressor_overhead(alg: Compression, compressed_len: usize) -> usize {
    match alg {
        Compression::Gzip => GZIP_STATE + gzip_header_fields(compressed_len),
        _ => 0,
    }
}
