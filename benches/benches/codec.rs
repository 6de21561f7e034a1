//! Criterion benchmarks of msg-wire's frame codec, uncompressed.
//!
//! - `encode/<kind>/<size>`: `FrameCodec::encode` of a frame with a
//!   payload into a reused buffer (which copies the payload), for Request,
//!   Reply, Publish and Data at 64 B, 1 KiB, 64 KiB and 1 MiB.
//! - `decode/<kind>/<size>`: copy the frame's bytes into a reused read
//!   buffer, as a socket read would, then `FrameCodec::decode` it. Decoding
//!   an uncompressed frame copies nothing (the payload is a view of the read
//!   buffer), so at large sizes this measures that one copy.
//! - `encode/small/<kind>`, `decode/small/<kind>`: Ping, Ack and Subscribe.
//! - `encode_parts/<variant>/<size>`: a Publish frame through `encode`
//!   (header and payload copied into one buffer) against `encode_parts`
//!   (a small header buffer plus the payload `Bytes`, uncopied).
//!
//! Throughput is in bytes on the wire (header included).
//!
//! Run with `cargo bench -p msg-benches --bench codec`; add a filter such
//! as `-- decode/` to run a part.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use msg_wire::{Compression, Frame, FrameCodec};

/// Payload sizes, in bytes.
const SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];

/// The four kinds with a payload, each carrying `size` bytes.
fn payload_frames(size: usize) -> [(&'static str, Frame); 4] {
    let payload = Bytes::from(vec![0xA5; size]);
    [
        (
            "request",
            Frame::Request {
                id: 7,
                payload: payload.clone(),
            },
        ),
        (
            "reply",
            Frame::Reply {
                id: 7,
                payload: payload.clone(),
            },
        ),
        (
            "publish",
            Frame::Publish {
                topic: Bytes::from_static(b"prices.eur"),
                seq: 42,
                payload: payload.clone(),
            },
        ),
        ("data", Frame::Data { seq: 42, payload }),
    ]
}

/// The small kinds, without a payload.
fn small_frames() -> [(&'static str, Frame); 3] {
    [
        ("ping", Frame::Ping { nonce: 0x1234 }),
        ("ack", Frame::Ack { seq: 42 }),
        (
            "subscribe",
            Frame::Subscribe {
                topic: Bytes::from_static(b"prices."),
            },
        ),
    ]
}

/// `frame` as it goes on the wire.
fn wire(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::new();
    FrameCodec::new()
        .encode(frame, &mut buf)
        .expect("benchmark frames are valid");
    buf.freeze()
}

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in SIZES {
        for (kind, frame) in payload_frames(size) {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::with_capacity(wire(&frame).len());
            group.throughput(Throughput::Bytes(wire(&frame).len() as u64));
            group.bench_with_input(BenchmarkId::new(kind, size_label(size)), &frame, |b, f| {
                b.iter(|| {
                    buf.clear();
                    codec.encode(f, &mut buf).expect("valid frame");
                    black_box(&buf);
                });
            });
        }
    }
    for (kind, frame) in small_frames() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::with_capacity(64);
        group.throughput(Throughput::Bytes(wire(&frame).len() as u64));
        group.bench_with_input(BenchmarkId::new("small", kind), &frame, |b, f| {
            b.iter(|| {
                buf.clear();
                codec.encode(f, &mut buf).expect("valid frame");
                black_box(&buf);
            });
        });
    }
    group.finish();
}

/// Copy `wire` into the reused read buffer and decode it. The decoded
/// frame is dropped at the end of each iteration, so the buffer's
/// allocation is unique again and `extend_from_slice` reuses it.
fn decode_case(codec: &mut FrameCodec, src: &mut BytesMut, wire: &[u8]) {
    src.extend_from_slice(wire);
    let frame = codec.decode(src).expect("valid frame");
    black_box(frame.expect("whole frame"));
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for size in SIZES {
        for (kind, frame) in payload_frames(size) {
            let bytes = wire(&frame);
            let mut codec = FrameCodec::new();
            let mut src = BytesMut::with_capacity(bytes.len());
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_with_input(BenchmarkId::new(kind, size_label(size)), &bytes, |b, w| {
                b.iter(|| decode_case(&mut codec, &mut src, w));
            });
        }
    }
    for (kind, frame) in small_frames() {
        let bytes = wire(&frame);
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::with_capacity(64);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("small", kind), &bytes, |b, w| {
            b.iter(|| decode_case(&mut codec, &mut src, w));
        });
    }
    group.finish();
}

fn encode_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_parts");
    for size in SIZES {
        let frame = Frame::Publish {
            topic: Bytes::from_static(b"prices.eur"),
            seq: 42,
            payload: Bytes::from(vec![0xA5; size]),
        };
        let len = wire(&frame).len();
        group.throughput(Throughput::Bytes(len as u64));

        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::with_capacity(len);
        group.bench_with_input(
            BenchmarkId::new("encode", size_label(size)),
            &frame,
            |b, f| {
                b.iter(|| {
                    buf.clear();
                    codec.encode(f, &mut buf).expect("valid frame");
                    black_box(&buf);
                });
            },
        );

        let codec = FrameCodec::new();
        group.bench_with_input(
            BenchmarkId::new("encode_parts", size_label(size)),
            &frame,
            |b, f| {
                b.iter(|| {
                    black_box(
                        codec
                            .encode_parts(f, Compression::None)
                            .expect("valid frame"),
                    )
                });
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

// What `criterion_group!` and `criterion_main!` would generate, written
// out so that no undocumented `pub fn` is needed.
fn main() {
    let mut c = config().configure_from_args();
    encode(&mut c);
    decode(&mut c);
    encode_parts(&mut c);
    c.final_summary();
}
