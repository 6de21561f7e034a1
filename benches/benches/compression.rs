//! Criterion benchmarks of msg-wire's payload compression.
//!
//! `compress/<data>/<size>/<algorithm>` and
//! `decompress/<data>/<size>/<algorithm>` for every algorithm this build
//! has (`none` is a plain copy, for reference), at 1 KiB, 64 KiB and 1 MiB,
//! on two kinds of data:
//!
//! - `text`: JSON records of one shape with varying values, like an order
//!   feed or structured logs; compresses well;
//! - `random`: uniformly random bytes; does not compress at all.
//!
//! Throughput is in uncompressed bytes. The compression ratio of each case
//! is printed to stderr before it runs.
//!
//! Run with `cargo bench -p msg-benches --bench compression`; add a filter
//! such as `-- compress/text` to run a part.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use msg_wire::Compression;
use msg_wire::compression::{compress, decompress};

/// Payload sizes, in bytes.
const SIZES: [usize; 3] = [1024, 64 * 1024, 1024 * 1024];

/// A small xorshift generator: deterministic data, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `size` bytes of text-like data: JSON records of one shape whose values
/// vary, as an order feed or a structured log would carry.
fn text(size: usize) -> Vec<u8> {
    const STATUS: [&str; 3] = ["open", "filled", "cancelled"];
    const VENUE: [&str; 4] = ["XPAR", "XETR", "XLON", "XAMS"];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(size + 256);
    let mut id = 1_000_000u64;
    while out.len() < size {
        let r = rng.next();
        id += 1 + r % 3;
        let record = format!(
            "{{\"id\":{id},\"status\":\"{}\",\"side\":\"{}\",\"price\":{}.{:02},\"qty\":{},\"venue\":\"{}\"}}\n",
            STATUS[(r >> 8) as usize % STATUS.len()],
            if r & (1 << 20) == 0 { "buy" } else { "sell" },
            100 + (r >> 24) % 50,
            (r >> 32) % 100,
            ((r >> 40) % 100 + 1) * 10,
            VENUE[(r >> 50) as usize % VENUE.len()],
        );
        out.extend_from_slice(record.as_bytes());
    }
    out.truncate(size);
    out
}

/// `size` random bytes.
fn random(size: usize) -> Vec<u8> {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s => format!("{}KiB", s >> 10),
    }
}

/// Every algorithm this build of msg-wire has; says which are missing.
fn algorithms() -> impl Iterator<Item = Compression> {
    Compression::ALL.into_iter().filter(|a| {
        if !a.is_available() {
            eprintln!("{a}: not in this build of msg-wire, skipped");
        }
        a.is_available()
    })
}

/// Slow cases (1 MiB through gzip takes milliseconds) get few, equal-sized
/// samples rather than criterion's default hundred growing ones.
fn tune_for(group: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    if size >= 1 << 20 {
        group.sampling_mode(SamplingMode::Flat).sample_size(20);
    }
}

fn bench_compress(c: &mut Criterion) {
    for (data, make) in [("text", text as fn(usize) -> Vec<u8>), ("random", random)] {
        for size in SIZES {
            let input = make(size);
            let mut group = c.benchmark_group(format!("compress/{data}/{}", size_label(size)));
            tune_for(&mut group, size);
            group.throughput(Throughput::Bytes(size as u64));
            for alg in algorithms() {
                let packed = compress(alg, &input).expect("compressible");
                eprintln!(
                    "{data} {} {alg}: {} -> {} bytes (ratio {:.2})",
                    size_label(size),
                    size,
                    packed.len(),
                    size as f64 / packed.len() as f64
                );
                group.bench_function(alg.name(), |b| {
                    b.iter(|| black_box(compress(alg, black_box(&input)).expect("compressible")));
                });
            }
            group.finish();
        }
    }
}

fn bench_decompress(c: &mut Criterion) {
    for (data, make) in [("text", text as fn(usize) -> Vec<u8>), ("random", random)] {
        for size in SIZES {
            let input = make(size);
            let mut group = c.benchmark_group(format!("decompress/{data}/{}", size_label(size)));
            tune_for(&mut group, size);
            group.throughput(Throughput::Bytes(size as u64));
            for alg in algorithms() {
                let packed = compress(alg, &input).expect("compressible");
                group.bench_function(alg.name(), |b| {
                    b.iter(|| {
                        black_box(
                            decompress(alg, black_box(&packed), size, size).expect("round trip"),
                        )
                    });
                });
            }
            group.finish();
        }
    }
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
    bench_compress(&mut c);
    bench_decompress(&mut c);
    c.final_summary();
}
