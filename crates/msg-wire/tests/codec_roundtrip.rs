//! Encoding then decoding gives back the same frame, whatever the kind and
//! the compression, and the two encoders agree byte for byte.

use crate::common;

use bytes::{Buf, BytesMut};
use msg_wire::{Compression, FrameCodec, HEADER_LEN, WireOptions};
use proptest::prelude::*;

fn codec(compress_min_size: usize) -> FrameCodec {
    let mut opts = WireOptions::new();
    opts.compress_min_size(compress_min_size);
    FrameCodec::with_options(opts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_kind_round_trips_with_every_compression(
        frame in common::frame(common::payload(4096)),
        compression in common::any_compression(),
    ) {
        let mut codec = codec(1024);
        let mut buf = BytesMut::new();
        codec.encode_with(&frame, compression, &mut buf).unwrap();
        let decoded = codec.decode(&mut buf).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_parts_matches_encode(
        frame in common::frame(common::payload(4096)),
        compression in common::any_compression(),
    ) {
        let mut codec = codec(256);
        let mut whole = BytesMut::new();
        codec.encode_with(&frame, compression, &mut whole).unwrap();

        let parts = codec.encode_parts(&frame, compression).unwrap();
        prop_assert_eq!(parts.len(), whole.len());
        prop_assert_eq!(&parts.to_bytes()[..], &whole[..]);

        // Through the `Buf` view, chunk by chunk, as a writer would.
        let mut via_buf = BytesMut::new();
        let mut cursor = parts.clone();
        while cursor.has_remaining() {
            let n = cursor.chunk().len();
            via_buf.extend_from_slice(cursor.chunk());
            cursor.advance(n);
        }
        prop_assert_eq!(&via_buf[..], &whole[..]);

        let mut wire = BytesMut::from(&parts.to_bytes()[..]);
        let decoded = codec.decode(&mut wire).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&frame));
    }

    #[test]
    fn compressible_payloads_are_compressed(
        pattern in proptest::collection::vec(any::<u8>(), 1..4),
        len in 2048usize..16384,
        id in any::<u64>(),
        compression in common::any_compression(),
    ) {
        let payload: bytes::Bytes =
            pattern.iter().copied().cycle().take(len).collect::<Vec<u8>>().into();
        let frame = msg_wire::Frame::Request { id, payload };
        let mut codec = codec(1024);
        let parts = codec.encode_parts(&frame, compression).unwrap();
        // flags byte carries the algorithm actually used
        prop_assert_eq!(parts.header()[6], compression.id());
        if compression != Compression::None {
            prop_assert!(parts.len() < len);
        }
        let mut wire = BytesMut::from(&parts.to_bytes()[..]);
        prop_assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame));
    }
}

#[test]
fn uncompressed_encode_parts_shares_the_payload() {
    let payload = bytes::Bytes::from(vec![7u8; 10_000]);
    let frame = msg_wire::Frame::Data {
        seq: 1,
        payload: payload.clone(),
    };
    let parts = FrameCodec::new()
        .encode_parts(&frame, Compression::None)
        .unwrap();
    assert_eq!(parts.payload().as_ptr(), payload.as_ptr());
    assert_eq!(parts.header().len(), HEADER_LEN + 8);
}

/// `encode_parts_in` gives the bytes `encode_parts` gives, with headers
/// split off one shared buffer, and writes nothing when it fails.
#[test]
fn encode_parts_in_shares_one_header_buffer() {
    let codec = FrameCodec::new();
    let mut scratch = bytes::BytesMut::with_capacity(64);
    let frames: Vec<_> = (1..=3u64)
        .map(|seq| msg_wire::Frame::Data {
            seq,
            payload: bytes::Bytes::from(vec![seq as u8; 100]),
        })
        .chain([msg_wire::Frame::Ack { seq: 3 }])
        .collect();
    let encoded: Vec<_> = frames
        .iter()
        .map(|f| {
            codec
                .encode_parts_in(f, Compression::None, &mut scratch)
                .unwrap()
        })
        .collect();
    for (frame, got) in frames.iter().zip(&encoded) {
        let want = codec.encode_parts(frame, Compression::None).unwrap();
        assert_eq!(got.to_bytes(), want.to_bytes());
    }
    // One allocation for the four headers: each starts where the one
    // before ends.
    for pair in encoded.windows(2) {
        let (a, b) = (pair[0].header(), pair[1].header());
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
    }

    let mut opts = WireOptions::new();
    opts.max_frame_size(16);
    let small = FrameCodec::with_options(opts);
    let before = scratch.len();
    assert!(
        small
            .encode_parts_in(&frames[0], Compression::None, &mut scratch)
            .is_err()
    );
    assert_eq!(scratch.len(), before, "nothing written on error");
}

/// Frames appended back to back with `encode_append` and wrapped by
/// `EncodedFrame::from_encoded` decode as the same frames, in order;
/// `with_seq` refuses such a run.
#[test]
fn a_run_of_appended_frames_decodes_frame_by_frame() {
    let codec = FrameCodec::new();
    let frames: Vec<_> = (1..=5u64)
        .map(|seq| msg_wire::Frame::Data {
            seq,
            payload: bytes::Bytes::from(vec![seq as u8; seq as usize * 10]),
        })
        .chain([msg_wire::Frame::Ack { seq: 5 }])
        .collect();
    let mut run = bytes::BytesMut::new();
    for f in &frames {
        codec.encode_append(f, Compression::None, &mut run).unwrap();
    }
    let encoded = msg_wire::EncodedFrame::from_encoded(run.freeze());
    assert!(encoded.payload().is_empty());
    assert!(encoded.with_seq(9, &mut bytes::BytesMut::new()).is_none());

    let mut wire = bytes::BytesMut::from(&encoded.to_bytes()[..]);
    let mut decoder = FrameCodec::new();
    for want in &frames {
        assert_eq!(decoder.decode(&mut wire).unwrap().as_ref(), Some(want));
    }
    assert!(wire.is_empty());

    // Nothing is appended for a frame over the limit.
    let mut opts = WireOptions::new();
    opts.max_frame_size(16);
    let mut run = bytes::BytesMut::new();
    assert!(
        FrameCodec::with_options(opts)
            .encode_append(&frames[4], Compression::None, &mut run)
            .is_err()
    );
    assert!(run.is_empty());
}

#[test]
fn encode_uses_the_default_compression_from_options() {
    let Some(&alg) = common::available_compressions()
        .iter()
        .find(|c| **c != Compression::None)
    else {
        return; // no algorithm in this build
    };
    let mut opts = WireOptions::new();
    opts.compression(alg);
    let mut codec = FrameCodec::with_options(opts);
    let frame = msg_wire::Frame::Reply {
        id: 9,
        payload: vec![b'a'; 4096].into(),
    };
    let mut buf = BytesMut::new();
    codec.encode(&frame, &mut buf).unwrap();
    assert_eq!(buf[6], alg.id());
    assert!(buf.len() < 4096);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
}

#[test]
fn with_seq_restamps_publish_and_data_sharing_the_payload() {
    use bytes::{Bytes, BytesMut};
    use msg_wire::{Compression, Frame, FrameCodec};

    let mut codec = FrameCodec::new();
    let payload = Bytes::from(vec![7u8; 5000]);
    let mut scratch = BytesMut::new();
    for frame in [
        Frame::Publish {
            topic: Bytes::from_static(b"t.1"),
            seq: 0,
            payload: payload.clone(),
        },
        Frame::Data {
            seq: 0,
            payload: payload.clone(),
        },
    ] {
        for compression in [Compression::None, Compression::Lz4] {
            let encoded = codec.encode_parts(&frame, compression).unwrap();
            let stamped = encoded.with_seq(42, &mut scratch).unwrap();
            assert_eq!(stamped.payload().as_ptr(), encoded.payload().as_ptr());
            let mut wire = BytesMut::from(&stamped.to_bytes()[..]);
            let got = codec.decode(&mut wire).unwrap().unwrap();
            let want = match &frame {
                Frame::Publish { topic, payload, .. } => Frame::Publish {
                    topic: topic.clone(),
                    seq: 42,
                    payload: payload.clone(),
                },
                Frame::Data { payload, .. } => Frame::Data {
                    seq: 42,
                    payload: payload.clone(),
                },
                _ => unreachable!(),
            };
            assert_eq!(got, want);
        }
    }
    let ping = codec
        .encode_parts(&Frame::Ping { nonce: 1 }, Compression::None)
        .unwrap();
    assert!(ping.with_seq(3, &mut scratch).is_none());
    let mut consumed = codec
        .encode_parts(
            &Frame::Data {
                seq: 1,
                payload: payload.clone(),
            },
            Compression::None,
        )
        .unwrap();
    bytes::Buf::advance(&mut consumed, 3);
    assert!(consumed.with_seq(3, &mut scratch).is_none());
}

#[test]
fn with_id_restamps_requests_and_replies_only() {
    use bytes::{Bytes, BytesMut};
    use msg_wire::{Compression, Frame, FrameCodec};

    let mut codec = FrameCodec::new();
    let payload = Bytes::from(vec![3u8; 3000]);
    let mut scratch = BytesMut::new();
    for compression in [Compression::None, Compression::Zstd] {
        for frame in [
            Frame::Request {
                id: 0,
                payload: payload.clone(),
            },
            Frame::Reply {
                id: 0,
                payload: payload.clone(),
            },
        ] {
            let encoded = codec.encode_parts(&frame, compression).unwrap();
            let stamped = encoded
                .with_id(0xDEAD_BEEF_0000_0007, &mut scratch)
                .unwrap();
            assert_eq!(stamped.payload().as_ptr(), encoded.payload().as_ptr());
            let mut wire = BytesMut::from(&stamped.to_bytes()[..]);
            let got = codec.decode(&mut wire).unwrap().unwrap();
            let want = match frame {
                Frame::Request { payload, .. } => Frame::Request {
                    id: 0xDEAD_BEEF_0000_0007,
                    payload,
                },
                Frame::Reply { payload, .. } => Frame::Reply {
                    id: 0xDEAD_BEEF_0000_0007,
                    payload,
                },
                _ => unreachable!(),
            };
            assert_eq!(got, want);
        }
    }
    let publish = codec
        .encode_parts(
            &Frame::Publish {
                topic: Bytes::from_static(b"t"),
                seq: 1,
                payload,
            },
            Compression::None,
        )
        .unwrap();
    assert!(
        publish.with_id(3, &mut scratch).is_none(),
        "a seq is not an id"
    );
    let request = codec
        .encode_parts(
            &Frame::Request {
                id: 1,
                payload: Bytes::from_static(b"x"),
            },
            Compression::None,
        )
        .unwrap();
    assert!(
        request.with_seq(3, &mut scratch).is_none(),
        "an id is not a seq"
    );
}
