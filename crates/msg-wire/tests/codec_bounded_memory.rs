//! Whatever a peer sends, the frame decoder neither panics nor lets the read
//! buffer grow past the frame limit.

use crate::common;

use bytes::{BufMut, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec, HEADER_LEN, WireError, WireOptions};
use proptest::prelude::*;

/// A deliberately small limit so that the bound is meaningful.
const MAX: usize = 4096;
/// How much the simulated reader grows the buffer by when it is full.
const STEP: usize = 64;

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
                let result = codec.decode(src);
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
    let err = codec.decode(&mut src).unwrap_err();
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
    assert!(matches!(
        codec.decode(&mut src),
        Err(WireError::FrameTooLarge {
            len: 0xffff_ffff,
            ..
        })
    ));
    assert_eq!(src.capacity(), 16);
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
    assert!(codec.decode(&mut src).unwrap().is_none());
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
        match codec.decode(&mut src).unwrap() {
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
