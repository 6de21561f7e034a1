//! Strategies and helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

pub mod alloc;

use bytes::{Bytes, BytesMut};
use msg_wire::{Compression, Frame, FrameCodec, Reason, WireError};
use proptest::prelude::*;

/// Algorithms this build can use.
pub fn available_compressions() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .collect()
}

pub fn any_compression() -> impl Strategy<Value = Compression> {
    proptest::sample::select(available_compressions())
}

/// A payload of random bytes (incompressible) or of a short pattern
/// repeated (very compressible), up to `max` bytes.
pub fn payload(max: usize) -> impl Strategy<Value = Bytes> + Clone {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from),
        (proptest::collection::vec(any::<u8>(), 1..8), 0..=max).prop_map(|(pattern, len)| {
            pattern
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect::<Vec<u8>>()
                .into()
        }),
    ]
}

pub fn topic() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

/// Any frame, with payloads drawn from `payload`.
pub fn frame(payload: impl Strategy<Value = Bytes> + Clone + 'static) -> BoxedStrategy<Frame> {
    prop_oneof![
        (any::<u64>(), payload.clone()).prop_map(|(id, payload)| Frame::Request { id, payload }),
        (any::<u64>(), payload.clone()).prop_map(|(id, payload)| Frame::Reply { id, payload }),
        (topic(), any::<u64>(), payload.clone()).prop_map(|(topic, seq, payload)| Frame::Publish {
            topic,
            seq,
            payload
        }),
        topic().prop_map(|topic| Frame::Subscribe { topic }),
        topic().prop_map(|topic| Frame::Unsubscribe { topic }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        (any::<u16>(), "\\PC{0,64}").prop_map(|(code, text)| Frame::Close {
            code: Reason::from(code),
            text
        }),
        (any::<u64>(), payload.clone()).prop_map(|(seq, payload)| Frame::Data { seq, payload }),
        any::<u64>().prop_map(|seq| Frame::Ack { seq }),
        payload
            .clone()
            .prop_map(|payload| Frame::Message { payload }),
        payload.prop_map(|payload| Frame::Part { payload }),
    ]
    .boxed()
}

/// Decode every whole frame in `src`.
pub fn decode_all(codec: &mut FrameCodec, src: &mut BytesMut) -> Result<Vec<Frame>, WireError> {
    let mut out = Vec::new();
    while let Some(f) = codec.decode(src)? {
        out.push(f);
    }
    Ok(out)
}

/// A frame header, for hand-built frames.
pub fn header(body_len: u32, version: u8, kind: u8, flags: u8) -> BytesMut {
    let mut b = BytesMut::new();
    b.extend_from_slice(&body_len.to_be_bytes());
    b.extend_from_slice(&[version, kind, flags]);
    b
}

/// A hand-built frame: header with the right length, then `body`.
pub fn raw_frame(kind: u8, flags: u8, body: &[u8]) -> BytesMut {
    let mut b = header(body.len() as u32, 1, kind, flags);
    b.extend_from_slice(body);
    b
}

/// Feeds `data` into `src` the way a socket reader would: only into spare
/// capacity, growing the buffer by exactly `step` bytes when it is full
/// (never by doubling), at most `chunk` bytes per "read". After each read
/// `on_read` is called; it returns `false` to stop (e.g. after an error).
pub fn feed_like_a_reader(
    data: &[u8],
    chunk: usize,
    step: usize,
    mut on_read: impl FnMut(&mut BytesMut) -> bool,
) {
    let mut src = BytesMut::with_capacity(step);
    let mut rest = data;
    while !rest.is_empty() {
        if src.capacity() == src.len() {
            let mut bigger = BytesMut::with_capacity(src.len() + step);
            bigger.extend_from_slice(&src);
            src = bigger;
        }
        let spare = src.capacity() - src.len();
        let n = spare.min(chunk.max(1)).min(rest.len());
        let (now, later) = rest.split_at(n);
        src.extend_from_slice(now);
        rest = later;
        if !on_read(&mut src) {
            return;
        }
    }
}
