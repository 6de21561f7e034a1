//! Malformed frames are errors, each with the right variant and reason, and
//! encoder-side limits are enforced.

use crate::common;

use bytes::{BufMut, Bytes, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec, Reason, WireError};

fn decode(mut src: BytesMut) -> Result<Option<Frame>, WireError> {
    FrameCodec::new().decode(&mut src)
}

#[test]
fn decode_rejects_bad_version_at_the_fifth_byte() {
    let src = common::header(8, 2, 0x06, 0);
    let err = decode(BytesMut::from(&src[..5])).unwrap_err();
    assert!(matches!(err, WireError::UnsupportedVersion(2)));
    assert_eq!(err.reason(), Reason::UnsupportedVersion);
    // The message names the peer's version and the one spoken here.
    assert_eq!(
        err.to_string(),
        "unsupported protocol version 2 (this side speaks version 1)"
    );
    assert!(matches!(
        decode(common::header(8, 0, 0x06, 0)),
        Err(WireError::UnsupportedVersion(0))
    ));
}

#[test]
fn decode_rejects_unknown_kind() {
    for kind in [0x00, 0x0D, 0x7F, 0xFF] {
        let err = decode(common::header(8, 1, kind, 0)).unwrap_err();
        assert!(matches!(err, WireError::UnknownKind(k) if k == kind));
        assert_eq!(err.reason(), Reason::ProtocolError);
        // The message names the offending byte, in hex like the kind table.
        assert_eq!(err.to_string(), format!("unknown frame kind {kind:#04x}"));
    }
}

#[test]
fn decode_rejects_reserved_flags() {
    for flags in [0b0000_1000, 0b1000_0000, 0b1111_1000, 0b0001_0001] {
        let err = decode(common::header(8, 1, 0x01, flags)).unwrap_err();
        assert!(
            matches!(err, WireError::ReservedFlags(f) if f == flags),
            "{err:?}"
        );
    }
}

#[test]
fn decode_rejects_unknown_compression() {
    for alg in 5..=7 {
        let err = decode(common::header(8, 1, 0x01, alg)).unwrap_err();
        assert!(matches!(err, WireError::UnknownCompression(a) if a == alg));
    }
}

#[test]
fn decode_rejects_compression_on_kinds_without_payload() {
    // Ping, Pong, Subscribe, Unsubscribe, Close, Ack.
    for kind in [0x04, 0x05, 0x06, 0x07, 0x08, 0x0A] {
        let err = decode(common::header(8, 1, kind, 1)).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{kind}: {err:?}");
    }
}

#[test]
fn decode_rejects_truncated_fixed_fields() {
    // Bodies shorter than the fixed fields of their kind.
    let cases: &[(u8, &[u8])] = &[
        (0x01, &[0; 7]),                               // request id
        (0x02, &[]),                                   // reply id
        (0x03, &[0; 9]),                               // publish: seq + 1 byte of topic len
        (0x03, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a']), // topic len 5, 1 byte
        (0x06, &[0; 4]),                               // ping nonce
        (0x07, &[0; 7]),                               // pong nonce
        (0x08, &[0]),                                  // close code
        (0x09, &[0; 3]),                               // data seq
        (0x0A, &[]),                                   // ack seq
    ];
    for (kind, body) in cases {
        let err = decode(common::raw_frame(*kind, 0, body)).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{kind}: {err:?}");
    }
}

#[test]
fn decode_rejects_trailing_bytes_after_fixed_size_bodies() {
    for kind in [0x06, 0x07, 0x0A] {
        let err = decode(common::raw_frame(kind, 0, &[0; 9])).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{kind}: {err:?}");
    }
}

#[test]
fn decode_rejects_bad_close_text() {
    let mut body = vec![0, 1];
    body.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        decode(common::raw_frame(0x08, 0, &body)),
        Err(WireError::Malformed(_))
    ));
    let mut body = vec![0, 1];
    body.extend_from_slice(&[b'x'; 1025]);
    assert!(matches!(
        decode(common::raw_frame(0x08, 0, &body)),
        Err(WireError::ReasonTooLong(1025))
    ));
}

#[test]
fn decode_rejects_oversized_subscription_topic() {
    let body = vec![b't'; 65536];
    assert!(matches!(
        decode(common::raw_frame(0x04, 0, &body)),
        Err(WireError::TopicTooLong(65536))
    ));
}

#[test]
fn decode_rejects_compressed_payload_without_original_length() {
    for alg in common::available_compressions() {
        if alg == Compression::None {
            continue;
        }
        let body = [0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0]; // id, then 2 bytes
        let err = decode(common::raw_frame(0x01, alg.id(), &body)).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{alg}: {err:?}");
    }
}

#[test]
fn decode_rejects_corrupt_compressed_payload() {
    for alg in common::available_compressions() {
        if alg == Compression::None {
            continue;
        }
        let mut body = BytesMut::new();
        body.put_u64(1);
        body.put_u32(100);
        body.extend_from_slice(&[0xAB; 40]);
        let err = decode(common::raw_frame(0x01, alg.id(), &body)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Decompress(_) | WireError::DecompressedTooLarge { .. }
            ),
            "{alg}: {err:?}"
        );
        assert_eq!(err.reason(), Reason::ProtocolError);
    }
}

#[test]
fn decode_accepts_empty_payloads_and_topics() {
    let cases = [
        Frame::Request {
            id: 0,
            payload: Bytes::new(),
        },
        Frame::Publish {
            topic: Bytes::new(),
            seq: 0,
            payload: Bytes::new(),
        },
        Frame::Subscribe {
            topic: Bytes::new(),
        },
        Frame::Close {
            code: Reason::Normal,
            text: String::new(),
        },
    ];
    for frame in cases {
        let mut buf = BytesMut::new();
        FrameCodec::new().encode(&frame, &mut buf).unwrap();
        assert_eq!(decode(buf).unwrap(), Some(frame));
    }
}

#[test]
fn close_keeps_unknown_reason_codes() {
    let frame = Frame::Close {
        code: Reason::from(777),
        text: "x".into(),
    };
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(&frame, &mut buf).unwrap();
    match decode(buf).unwrap() {
        Some(Frame::Close { code, .. }) => {
            assert_eq!(code, Reason::Unknown(777));
            assert_eq!(u16::from(code), 777);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn encode_rejects_long_topic_and_reason() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let topic = Bytes::from(vec![b't'; 65536]);
    for frame in [
        Frame::Publish {
            topic: topic.clone(),
            seq: 0,
            payload: Bytes::new(),
        },
        Frame::Subscribe {
            topic: topic.clone(),
        },
        Frame::Unsubscribe { topic },
    ] {
        assert!(matches!(
            codec.encode(&frame, &mut buf),
            Err(WireError::TopicTooLong(65536))
        ));
    }
    let frame = Frame::Close {
        code: Reason::Normal,
        text: "é".repeat(513),
    };
    assert!(matches!(
        codec.encode(&frame, &mut buf),
        Err(WireError::ReasonTooLong(1026))
    ));
    assert!(buf.is_empty());

    // The longest allowed ones go through.
    let frame = Frame::Subscribe {
        topic: vec![b't'; 65535].into(),
    };
    codec.encode(&frame, &mut buf).unwrap();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
}

#[test]
fn error_reasons_map_to_close_codes() {
    assert_eq!(
        WireError::FrameTooLarge { len: 1, max: 0 }.reason(),
        Reason::FrameTooLarge
    );
    assert_eq!(
        WireError::UnsupportedVersion(9).reason(),
        Reason::UnsupportedVersion
    );
    assert_eq!(WireError::BadMagic.reason(), Reason::ProtocolError);
    assert_eq!(
        WireError::DecompressedTooLarge { len: 1, max: 0 }.reason(),
        Reason::ProtocolError
    );
    assert_eq!(WireError::Malformed("x").reason(), Reason::ProtocolError);
    let io = WireError::from(std::io::Error::other("boom"));
    assert!(io.is_io());
    assert_eq!(io.reason(), Reason::Internal);
    // Messages are lowercase without a trailing period.
    for e in [
        WireError::BadMagic,
        WireError::UnknownKind(0x42),
        WireError::FrameTooLarge { len: 10, max: 5 },
        WireError::TokenTooLong { len: 10, max: 5 },
    ] {
        let msg = e.to_string();
        assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
}

#[cfg(not(feature = "zstd"))]
#[test]
fn disabled_algorithm_is_unavailable_both_ways() {
    let err = decode(common::header(20, 1, 0x01, Compression::Zstd.id())).unwrap_err();
    assert!(matches!(
        err,
        WireError::CompressionUnavailable(Compression::Zstd)
    ));
    let frame = Frame::Request {
        id: 1,
        payload: vec![0; 4096].into(),
    };
    let mut buf = BytesMut::new();
    assert!(matches!(
        FrameCodec::new().encode_with(&frame, Compression::Zstd, &mut buf),
        Err(WireError::CompressionUnavailable(Compression::Zstd))
    ));
}
