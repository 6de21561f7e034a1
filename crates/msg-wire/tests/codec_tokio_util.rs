//! The tokio-util `Decoder`/`Encoder` glue (feature `codec`).

#![cfg(feature = "codec")]

use bytes::{Bytes, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec, WireError};
use tokio_util::codec::{Decoder, Encoder};

#[test]
fn encoder_and_decoder_traits_agree_with_inherent_methods() {
    let mut codec = FrameCodec::new();
    let frame = Frame::Reply {
        id: 3,
        payload: Bytes::from_static(b"pong"),
    };
    let mut buf = BytesMut::new();
    Encoder::<Frame>::encode(&mut codec, frame.clone(), &mut buf).unwrap();
    Encoder::<&Frame>::encode(&mut codec, &frame, &mut buf).unwrap();
    let encoded = codec.encode_parts(&frame, Compression::None).unwrap();
    Encoder::<msg_wire::EncodedFrame>::encode(&mut codec, encoded.clone(), &mut buf).unwrap();
    assert_eq!(buf.len(), 3 * encoded.len());

    for _ in 0..3 {
        assert_eq!(
            Decoder::decode(&mut codec, &mut buf).unwrap(),
            Some(frame.clone())
        );
    }
    assert_eq!(Decoder::decode(&mut codec, &mut buf).unwrap(), None);
}

#[test]
fn eof_inside_a_frame_is_an_error() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    codec.encode(&Frame::Ping { nonce: 1 }, &mut buf).unwrap();
    buf.truncate(buf.len() - 1);
    let err = codec.decode_eof(&mut buf).unwrap_err();
    assert!(matches!(err, WireError::Io(_)), "{err:?}");
}
