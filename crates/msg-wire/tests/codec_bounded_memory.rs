//! Whatever a peer sends, the frame decoder neither panics nor lets the read
//! buffer grow past the frame limit, and no decode call allocates more than
//! the frame limit plus a fixed overhead (counted by the allocator, see
//! `common::alloc`).

use crate::common;
use crate::common::alloc::{self, peak_during};

use bytes::{BufMut, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec, HEADER_LEN, WireError, WireOptions};
use proptest::prelude::*;

/// A deliberately small limit so that the bound is meaningful.
const MAX: usize = 4096;
/// How much the simulated reader grows the buffer by when it is full.
const STEP: usize = 64;

/// Most one `decode` call may allocate with a frame limit of `MAX`, in
/// bytes, given the frame header at the front of `src` (if it is in yet).
///
/// A call does one of two things: grow the read buffer to hold the rest of
/// a frame (at most `HEADER_LEN + MAX`), or finish a frame, which allocates
/// nothing for an uncompressed payload, and for a compressed one at most
/// `MAX` of output plus the decompressor's working memory (its input is part
/// of the frame, so at most `MAX` too). Then small bookkeeping allocations.
fn decode_peak_bound(src: &[u8]) -> usize {
    let alg = src
        .get(6)
        .and_then(|flags| Compression::from_id(flags & 0b111).ok())
        .unwrap_or(Compression::None);
    HEADER_LEN + MAX + alloc::decompressor_overhead(alg, MAX) + alloc::SMALL
}

/// The decoder's growth step for a frame whose body is still arriving
/// (`GROW_STEP` in `src/codec.rs`).
const GROW_STEP: usize = 64 * 1024;

fn small_codec() -> FrameCodec {
    let mut opts = WireOptions::new();
    opts.max_frame_size(MAX).compress_min_size(64);
    FrameCodec::with_options(opts)
}

/// Valid frames, then some bytes overwritten: reaches deep into the parser.
fn mutated_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(
            (
                common::frame(common::payload(1500)),
                common::any_compression(),
            ),
            1..5,
        ),
        proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..6),
    )
        .prop_map(|(frames, edits)| {
            let mut codec = small_codec();
            let mut buf = BytesMut::new();
            for (f, c) in &frames {
                codec.encode_with(f, *c, &mut buf).unwrap();
            }
            let mut bytes = buf.to_vec();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            bytes
        })
}

/// A plausible header (any length, valid version, any kind and flags) and
/// random bytes after it.
fn plausible_header() -> impl Strategy<Value = Vec<u8>> {
    (
        0u32..(2 * MAX as u32),
        0u8..12,
        0u8..8,
        proptest::collection::vec(any::<u8>(), 0..3 * MAX),
    )
        .prop_map(|(len, kind, flags, body)| {
            let mut b = Vec::new();
            b.put_u32(len);
            b.put_u8(1);
            b.put_u8(kind);
            b.put_u8(flags);
            b.extend_from_slice(&body);
            b
        })
}

fn hostile_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2 * MAX),
        plausible_header(),
        mutated_stream(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        data in hostile_input(),
        chunk in 1usize..700,
    ) {
        let mut codec = small_codec();
        let bound = MAX + HEADER_LEN + STEP;
        common::feed_like_a_reader(&data, chunk, STEP, |src| {
            loop {
                let before = src.capacity();
                let alloc_bound = decode_peak_bound(src);
                let (result, peak) = peak_during(|| codec.decode(src));
                assert!(
                    peak <= alloc_bound,
                    "one decode call allocated {peak} > {alloc_bound} bytes"
                );
                assert!(
                    src.capacity() <= bound.max(before),
                    "capacity {} > {}",
                    src.capacity(),
                    bound
                );
                assert!(src.capacity() <= bound, "capacity {} > {}", src.capacity(), bound);
                match result {
                    Ok(Some(frame)) => {
                        // Anything accepted must survive a re-encode.
                        let mut again = BytesMut::new();
                        codec.encode_with(&frame, Compression::None, &mut again).unwrap();
                        assert_eq!(codec.decode(&mut again).unwrap(), Some(frame));
                    }
                    Ok(None) => return true,
                    Err(_) => return false, // the connection would be closed
                }
            }
        });
    }
}

#[test]
fn oversized_length_is_refused_with_only_four_bytes() {
    let mut codec = small_codec();
    let mut src = BytesMut::with_capacity(16);
    src.put_u32((MAX + 1) as u32);
    let (result, peak) = peak_during(|| codec.decode(&mut src));
    let err = result.unwrap_err();
    assert_eq!(peak, 0, "a refused frame costs no allocation at all");
    assert!(
        matches!(err, WireError::FrameTooLarge { len, max } if len == (MAX + 1) as u64 && max == MAX),
        "{err:?}"
    );
    assert_eq!(
        src.capacity(),
        16,
        "nothing may be reserved for a refused frame"
    );

    // The same with the default 64 MiB limit and a 4 GiB claim.
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::with_capacity(16);
    src.put_u32(u32::MAX);
    let (result, peak) = peak_during(|| codec.decode(&mut src));
    assert!(matches!(
        result,
        Err(WireError::FrameTooLarge {
            len: 0xffff_ffff,
            ..
        })
    ));
    assert_eq!(src.capacity(), 16);
    assert_eq!(peak, 0);
}

#[test]
fn declared_sizes_allocate_nothing_proportional_to_them() {
    // A whole frame whose compressed payload claims to expand to 4 GiB:
    // refused on the claim, before any decompressor runs.
    let mut body = BytesMut::new();
    body.put_u64(1);
    body.put_u32(u32::MAX);
    body.put_bytes(0xAB, 32);
    let mut codec = FrameCodec::new();
    for alg in common::available_compressions() {
        if alg == Compression::None {
            continue;
        }
        let mut src = common::raw_frame(0x01, alg.id(), &body);
        let (result, peak) = peak_during(|| codec.decode(&mut src));
        assert!(
            matches!(result, Err(WireError::DecompressedTooLarge { .. })),
            "{alg}: {result:?}"
        );
        assert!(peak <= alloc::SMALL, "{alg}: {peak} bytes");
    }

    // A frame of exactly the default 64 MiB limit is allowed, but declaring
    // it costs only the decoder's first growth step, not 64 MiB.
    let declared = u32::try_from(msg_wire::DEFAULT_MAX_FRAME_SIZE).unwrap();
    let mut src = common::header(declared, 1, 0x09, 0);
    src.put_u64(7);
    let (result, peak) = peak_during(|| codec.decode(&mut src));
    assert!(result.unwrap().is_none());
    assert!(
        peak <= HEADER_LEN + 8 + GROW_STEP,
        "{peak} bytes for a frame declared at 64 MiB"
    );
}

#[test]
fn a_whole_uncompressed_frame_decodes_without_copying() {
    // The frame is already in the buffer: decoding splits it off and hands
    // out views of it; the only allocation is `Bytes`' small shared header.
    let mut codec = small_codec();
    let frame = Frame::Publish {
        topic: "t".into(),
        seq: 9,
        payload: vec![5u8; MAX - 64].into(),
    };
    let mut src = BytesMut::new();
    codec
        .encode_with(&frame, Compression::None, &mut src)
        .unwrap();
    let (decoded, peak) = peak_during(|| codec.decode(&mut src));
    assert_eq!(decoded.unwrap(), Some(frame));
    assert!(peak <= alloc::SMALL, "{peak} bytes");
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let mut codec = small_codec();
    let frame = Frame::Data {
        seq: 1,
        payload: vec![1u8; MAX - 8].into(),
    };
    let mut buf = BytesMut::new();
    codec.encode(&frame, &mut buf).unwrap();
    assert_eq!(buf.len(), HEADER_LEN + MAX);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
}

#[test]
fn incomplete_body_reserves_exactly_the_rest_of_a_small_frame() {
    let mut codec = FrameCodec::new();
    let body_len = 40 * 1024;
    let mut src = common::header(body_len, 1, 0x09, 0);
    src.put_u64(1);
    assert!(codec.decode(&mut src).unwrap().is_none());
    let total = HEADER_LEN + body_len as usize;
    assert!(src.capacity() >= total);
    assert!(src.capacity() <= total + 64, "capacity {}", src.capacity());

    // And nothing at all while the header itself is incomplete.
    let mut src = BytesMut::with_capacity(8);
    src.put_u8(0);
    src.put_u8(0x10);
    assert!(codec.decode(&mut src).unwrap().is_none());
    assert_eq!(src.capacity(), 8);
}

#[test]
fn a_declared_large_frame_costs_memory_only_as_its_bytes_arrive() {
    // A peer declares 10 MiB and then trickles: the buffer follows what
    // actually arrived (at most double it, or 64 KiB more), never the
    // declaration, and ends exactly at the frame size.
    let mut codec = FrameCodec::new();
    let body_len = 10 * 1024 * 1024;
    let total = HEADER_LEN + body_len as usize;
    let mut src = common::header(body_len, 1, 0x09, 0);
    src.put_u64(1);
    let (result, peak) = peak_during(|| codec.decode(&mut src));
    assert!(result.unwrap().is_none());
    assert!(peak <= src.len() + GROW_STEP, "{peak} bytes allocated");
    assert!(
        src.capacity() <= src.len() + 64 * 1024 + 64,
        "capacity {} after {} bytes",
        src.capacity(),
        src.len()
    );
    let mut reallocations = 0;
    while src.len() < total {
        // A reader fills whatever room the decoder made, then asks again.
        let room = (src.capacity() - src.len()).min(total - src.len());
        let before = src.capacity();
        src.put_bytes(0, room);
        let (result, peak) = peak_during(|| codec.decode(&mut src));
        // Growing copies what arrived into a block at most twice its size
        // (or 64 KiB bigger), never one of the declared size.
        assert!(
            peak <= (2 * src.len()).max(src.len() + GROW_STEP) + 64,
            "{peak} bytes allocated with {} in",
            src.len()
        );
        match result.unwrap() {
            None => {
                assert!(src.capacity() <= (2 * src.len()).max(src.len() + 64 * 1024) + 64);
                assert!(src.capacity() <= total + 64);
                if src.capacity() != before {
                    reallocations += 1;
                }
            }
            Some(_) => break,
        }
    }
    // Geometric growth: a handful of copies for 10 MiB, not one per read.
    assert!(reallocations <= 12, "{reallocations} reallocations");
}

#[test]
fn encoder_refuses_frames_the_peer_would_refuse() {
    let mut codec = small_codec();
    let frame = Frame::Request {
        id: 1,
        payload: vec![0u8; MAX].into(), // 8 + MAX > MAX
    };
    let mut buf = BytesMut::new();
    let err = codec
        .encode_with(&frame, Compression::None, &mut buf)
        .unwrap_err();
    assert!(matches!(err, WireError::FrameTooLarge { len, max: MAX } if len == MAX as u64 + 8));
    assert!(buf.is_empty(), "nothing is written on error");

    // Compression does not help a payload over the limit: the receiver
    // could not decompress it.
    for c in common::available_compressions() {
        assert!(matches!(
            codec.encode_parts(&frame, c),
            Err(WireError::FrameTooLarge { .. })
        ));
    }
}
