//! Compression is the publisher's choice alone: messages published with
//! each algorithm arrive intact at a subscriber that configured nothing.

use crate::common;

use std::time::Duration;

use crate::common::Setup;
use bytes::Bytes;
use msg_socket::wire::Compression;
use msg_socket::{PubMessage, PubSocket, SubSocket};

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// Every algorithm built in (all four with the default features).
fn algorithms() -> Vec<Compression> {
    let available: Vec<Compression> = Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None && c.is_available())
        .collect();
    let expected = [
        cfg!(feature = "gzip"),
        cfg!(feature = "zstd"),
        cfg!(feature = "snappy"),
        cfg!(feature = "lz4"),
    ];
    assert_eq!(
        available.len(),
        expected.iter().filter(|on| **on).count(),
        "{available:?}"
    );
    available
}

/// A compressible 256 KiB payload, a small one (under `compress_min_size`,
/// sent plain) and an incompressible one, under each algorithm: all arrive
/// byte for byte, numbered in order, and the compressible one crossed the
/// wire in far fewer bytes than its size (so it was compressed, once for
/// both subscribers).
async fn every_algorithm_arrives_intact_at_a_plain_subscriber(s: Setup) {
    let name = s.name;
    for compression in algorithms() {
        let mut server = s.server.clone();
        server.compression(compression).compress_min_size(512);
        let publisher = PubSocket::with_options(server).unwrap();
        let bind = match name {
            "inproc" | "ipc" => format!("{}-{compression}", s.bind),
            _ => s.bind.clone(),
        };
        let endpoint = publisher.bind(&bind).await.unwrap().to_string();
        let mut subs = vec![];
        for _ in 0..2 {
            // Nothing about compression here.
            let sub = SubSocket::with_options(s.client.clone()).unwrap();
            sub.subscribe("").await;
            sub.connect(&endpoint).unwrap();
            subs.push(sub);
        }
        assert!(publisher.wait_for_subscribers(2, WAIT).await, "{name}");

        let compressible: Bytes = b"all work and no play makes a dull boy. "
            .iter()
            .copied()
            .cycle()
            .take(256 * 1024)
            .collect();
        let small = Bytes::from_static(b"short and plain");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Bytes = (0..64 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();

        let before: Vec<u64> = subs.iter().map(|s| s.stats().bytes_received).collect();
        assert_eq!(publisher.publish("big", compressible.clone()).unwrap(), 2);
        for (sub, before) in subs.iter_mut().zip(before) {
            let m = next(sub).await;
            assert_eq!(m.payload(), &compressible, "{name} {compression}");
            assert_eq!(m.seq(), 1);
            let on_the_wire = sub.stats().bytes_received - before;
            assert!(
                on_the_wire < compressible.len() as u64 / 4,
                "{name} {compression}: {on_the_wire} bytes for {}",
                compressible.len()
            );
        }
        assert_eq!(publisher.publish("small", small.clone()).unwrap(), 2);
        assert_eq!(publisher.publish("noise", noise.clone()).unwrap(), 2);
        for sub in &mut subs {
            let m = next(sub).await;
            assert_eq!((m.payload(), m.seq()), (&small, 2), "{name} {compression}");
            let m = next(sub).await;
            assert_eq!((m.payload(), m.seq()), (&noise, 3), "{name} {compression}");
            assert_eq!(sub.stats().protocol_errors, 0);
        }
    }
}

over_every_transport!(every_algorithm_arrives_intact_at_a_plain_subscriber);
