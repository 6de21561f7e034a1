//! When the encoder compresses and when it does not.

use crate::common;

use bytes::BytesMut;
use msg_wire::{Compression, Frame, FrameCodec, WireError, WireOptions, compression};
use proptest::prelude::*;

fn flags_of(codec: &mut FrameCodec, frame: &Frame, alg: Compression) -> u8 {
    let mut buf = BytesMut::new();
    codec.encode_with(frame, alg, &mut buf).unwrap();
    let flags = buf[6];
    assert_eq!(codec.decode(&mut buf).unwrap().as_ref(), Some(frame));
    flags
}

fn compressing() -> Vec<Compression> {
    common::available_compressions()
        .into_iter()
        .filter(|c| *c != Compression::None)
        .collect()
}

#[test]
fn payloads_below_min_size_are_sent_plain() {
    let mut codec = FrameCodec::new(); // min size 1024
    for alg in compressing() {
        let small = Frame::Request {
            id: 1,
            payload: vec![0u8; 1023].into(),
        };
        assert_eq!(flags_of(&mut codec, &small, alg), 0, "{alg}");
        let big = Frame::Request {
            id: 1,
            payload: vec![0u8; 1024].into(),
        };
        assert_eq!(flags_of(&mut codec, &big, alg), alg.id(), "{alg}");
    }
}

#[test]
fn incompressible_payloads_are_sent_plain() {
    // A xorshift byte stream does not compress.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let frame = Frame::Data {
        seq: 3,
        payload: noise.into(),
    };
    let mut codec = FrameCodec::new();
    for alg in compressing() {
        assert_eq!(flags_of(&mut codec, &frame, alg), 0, "{alg}");
    }
}

#[test]
fn kinds_without_payload_are_never_compressed() {
    let mut opts = WireOptions::new();
    opts.compress_min_size(0);
    let mut codec = FrameCodec::with_options(opts);
    let frames = [
        Frame::Ping { nonce: 1 },
        Frame::Subscribe {
            topic: vec![b'a'; 4096].into(),
        },
        Frame::Close {
            code: msg_wire::Reason::Normal,
            text: "z".repeat(1024),
        },
        Frame::Ack { seq: 1 },
    ];
    for alg in compressing() {
        for f in &frames {
            assert_eq!(flags_of(&mut codec, f, alg), 0, "{alg} {f:?}");
        }
    }
}

#[test]
fn algorithm_ids_round_trip() {
    for alg in Compression::ALL {
        assert_eq!(Compression::from_id(alg.id()).unwrap(), alg);
        assert_eq!(Compression::try_from(u8::from(alg)).unwrap(), alg);
    }
    assert!(matches!(
        Compression::from_id(5),
        Err(WireError::UnknownCompression(5))
    ));
    assert_eq!(Compression::default(), Compression::None);
    assert!(Compression::None.is_available());
    assert_eq!(Compression::Zstd.to_string(), "zstd");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn standalone_functions_round_trip(
        data in common::payload(8192),
        alg in common::any_compression(),
    ) {
        let packed = compression::compress(alg, &data).unwrap();
        let back = compression::decompress(alg, &packed, data.len(), 1 << 20).unwrap();
        prop_assert_eq!(back, data.clone());
        let over = compression::decompress(alg, &packed, data.len(), data.len().saturating_sub(1));
        let refused = matches!(over, Err(WireError::DecompressedTooLarge { .. }));
        prop_assert!(refused || data.is_empty());
    }
}
