//! Decoding slices payloads and topics out of the read buffer instead of
//! copying them.

use bytes::{Bytes, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec};

fn within(inner: &Bytes, start: *const u8, len: usize) -> bool {
    let outer = start as usize..start as usize + len;
    let p = inner.as_ptr() as usize;
    outer.contains(&p) && p + inner.len() <= outer.end
}

#[test]
fn uncompressed_payload_and_topic_point_into_the_read_buffer() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::new();
    let frames = [
        Frame::Publish {
            topic: "weather.paris".into(),
            seq: 1,
            payload: vec![1u8; 5000].into(),
        },
        Frame::Request {
            id: 2,
            payload: vec![2u8; 300].into(),
        },
    ];
    for f in &frames {
        codec.encode_with(f, Compression::None, &mut src).unwrap();
    }
    let (start, len) = (src.as_ptr(), src.len());

    match codec.decode(&mut src).unwrap() {
        Some(Frame::Publish { topic, payload, .. }) => {
            assert!(within(&topic, start, len));
            assert!(within(&payload, start, len));
            assert_eq!(&topic[..], b"weather.paris");
        }
        other => panic!("{other:?}"),
    }
    match codec.decode(&mut src).unwrap() {
        Some(Frame::Request { payload, .. }) => assert!(within(&payload, start, len)),
        other => panic!("{other:?}"),
    }
    assert!(src.is_empty());
}

#[test]
fn payload_decoded_after_partial_reads_is_still_a_view() {
    // Header first (the decoder reserves room for the body), then the body:
    // the frame is split out of the buffer that received the body.
    let mut codec = FrameCodec::new();
    let frame = Frame::Data {
        seq: 5,
        payload: vec![9u8; 100_000].into(),
    };
    let mut wire = BytesMut::new();
    codec.encode(&frame, &mut wire).unwrap();

    // A reader pulls in as much as the decoder made room for, each time.
    let mut src = BytesMut::new();
    src.extend_from_slice(&wire[..7]);
    let mut sent = 7;
    loop {
        assert!(codec.decode(&mut src).unwrap().is_none());
        let room = src.capacity() - src.len();
        assert!(room > 0, "the decoder makes room for the body");
        let take = room.min(wire.len() - sent);
        let cap = src.capacity();
        src.extend_from_slice(&wire[sent..sent + take]);
        assert_eq!(src.capacity(), cap, "the reserved room was enough");
        sent += take;
        if sent == wire.len() {
            break;
        }
    }
    let (start, len) = (src.as_ptr(), src.len());
    match codec.decode(&mut src).unwrap() {
        Some(Frame::Data { payload, .. }) => assert!(within(&payload, start, len)),
        other => panic!("{other:?}"),
    }
}
