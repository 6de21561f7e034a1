//! Large frames and the read buffer, with a reader that works like the
//! socket driver's (`reserve(16 KiB)` only when the buffer is full):
//!
//! - once the application has dropped a large frame, the next one is read
//!   into the same allocation, with no new buffer and no growth copies;
//! - memory still follows the bytes that really arrived: a peer that
//!   declares a large frame and trickles it gets no more than the growth
//!   bound allows (what arrived, at most doubled or 64 KiB more), plus at
//!   most the allocation of a frame it really sent before.

use bytes::{Bytes, BytesMut};
use msg_wire::{Frame, FrameCodec};

/// What the driver reserves when the buffer is full.
const READ_RESERVE: usize = 16 * 1024;
/// Largest "read".
const CHUNK: usize = 64 * 1024;
const MIB: usize = 1024 * 1024;

/// One read, like the driver's: room only when there is none, then at most
/// `CHUNK` bytes into the spare capacity.
fn read(src: &mut BytesMut, data: &mut &[u8]) {
    if src.capacity() == src.len() {
        src.reserve(READ_RESERVE);
    }
    let n = (src.capacity() - src.len()).min(CHUNK).min(data.len());
    let (now, later) = data.split_at(n);
    src.extend_from_slice(now);
    *data = later;
}

fn encoded(seq: u64, payload: Bytes) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameCodec::new()
        .encode(
            &Frame::Publish {
                topic: Bytes::from_static(b"t"),
                seq,
                payload,
            },
            &mut out,
        )
        .unwrap();
    out.to_vec()
}

/// Reads and decodes until one frame comes out, checking after every
/// decode that the buffer stays within `bound(arrived)`.
fn next_frame(
    codec: &mut FrameCodec,
    src: &mut BytesMut,
    data: &mut &[u8],
    bound: impl Fn(usize) -> usize,
) -> Frame {
    loop {
        if let Some(frame) = codec.decode(src).unwrap() {
            return frame;
        }
        assert!(
            src.capacity() <= bound(src.len()),
            "capacity {} with {} bytes in",
            src.capacity(),
            src.len()
        );
        assert!(!data.is_empty(), "ran out of bytes before a frame");
        read(src, data);
    }
}

fn payload_of(frame: Frame) -> Bytes {
    match frame {
        Frame::Publish { payload, .. } => payload,
        other => panic!("not a publication: {other:?}"),
    }
}

/// The bound on a fresh buffer for a frame still arriving: what arrived,
/// at most doubled or 64 KiB more, plus the reader's own reserve.
fn growth_bound(arrived: usize) -> usize {
    (2 * arrived).max(arrived + 64 * 1024) + READ_RESERVE
}

#[test]
fn a_dropped_frame_gives_its_buffer_to_the_next_one() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::new();
    let first = encoded(1, Bytes::from(vec![1u8; MIB]));
    let second = encoded(2, Bytes::from(vec![2u8; MIB]));
    let frame_len = first.len();

    let mut data = &first[..];
    let one = payload_of(next_frame(&mut codec, &mut src, &mut data, |_| {
        frame_len + READ_RESERVE
    }));
    assert!(one.iter().all(|&b| b == 1));
    let at = one.as_ptr() as usize;
    drop(one);

    // The buffer is reclaimed by the reader's first reserve and holds the
    // whole second frame: it never has to grow.
    let mut data = &second[..];
    let mut capacities = Vec::new();
    let two = loop {
        if let Some(frame) = codec.decode(&mut src).unwrap() {
            break payload_of(frame);
        }
        read(&mut src, &mut data);
        capacities.push(src.capacity());
    };
    assert!(two.iter().all(|&b| b == 2));
    assert_eq!(two.as_ptr() as usize, at, "the same allocation");
    capacities.dedup();
    assert_eq!(capacities.len(), 1, "no growth step: {capacities:?}");
}

#[test]
fn a_held_frame_keeps_its_buffer_and_the_next_one_grows_with_its_bytes() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::new();
    let first = encoded(1, Bytes::from(vec![1u8; MIB]));
    let mut data = &first[..];
    let held = payload_of(next_frame(&mut codec, &mut src, &mut data, |_| {
        first.len() + READ_RESERVE
    }));

    // The application still holds the first frame: its bytes must not be
    // touched, and a peer that declares 10 MiB and trickles gets a fresh
    // buffer that only follows what it sent.
    let big = encoded(2, Bytes::from(vec![2u8; 10 * MIB]));
    let mut data = &big[..];
    let two = payload_of(next_frame(&mut codec, &mut src, &mut data, growth_bound));
    assert_eq!(two.len(), 10 * MIB);
    assert!(two.iter().all(|&b| b == 2));
    assert!(held.iter().all(|&b| b == 1), "the held frame is intact");
}

#[test]
fn after_a_dropped_frame_a_trickled_declaration_gets_no_more_than_that_frame() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::new();
    let first = encoded(1, Bytes::from(vec![1u8; MIB]));
    let first_len = first.len();
    let mut data = &first[..];
    drop(next_frame(&mut codec, &mut src, &mut data, |_| {
        first_len + READ_RESERVE
    }));

    // The peer really sent 1 MiB; now it declares 32 MiB and sends a
    // trickle. The reclaimed 1 MiB allocation is reused (it is held
    // anyway), and past it the buffer again grows only with what arrives.
    let big = encoded(2, Bytes::from(vec![2u8; 32 * MIB]));
    let trickle = &big[..3 * MIB];
    let mut data = trickle;
    let mut codec_calls = 0;
    while !data.is_empty() {
        assert!(codec.decode(&mut src).unwrap().is_none());
        codec_calls += 1;
        assert!(
            src.capacity() <= growth_bound(src.len()).max(first_len),
            "capacity {} with {} bytes in",
            src.capacity(),
            src.len()
        );
        read(&mut src, &mut data);
    }
    assert!(codec_calls > 3);
    assert_eq!(src.len(), 3 * MIB);
    assert!(src.capacity() < 8 * MIB, "capacity {}", src.capacity());
}
