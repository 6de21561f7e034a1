//! `compress_min_size`, seen on the wire: a raw peer reads each frame's
//! header over real TCP and looks at its compression bits. A payload one
//! byte under the minimum goes plain; one at the minimum goes compressed;
//! for publications (Pub), requests (Req) and replies (Rep), with the
//! default minimum (1 KiB) and a configured one.

use std::time::Duration;

use crate::raw::{HANG, RawPeer};
use bytes::{Bytes, BytesMut};
use msg_socket::wire::{Compression, Frame, FrameCodec, HEADER_LEN, SocketType};
use msg_socket::{PubSocket, RepSocket, ReqSocket, SocketOptions};
use tokio::io::AsyncReadExt;

/// The compression bits of a frame's flags byte.
const COMPRESSION_BITS: u8 = 0b111;

/// One frame as it came off the wire, other than heartbeats: its bytes and
/// the frame they decode to.
async fn raw_frame(peer: &mut RawPeer) -> (BytesMut, Frame) {
    loop {
        let bytes = tokio::time::timeout(HANG, async {
            loop {
                if peer.buf.len() >= HEADER_LEN {
                    let body = u32::from_be_bytes(peer.buf[..4].try_into().unwrap()) as usize;
                    if peer.buf.len() >= HEADER_LEN + body {
                        return peer.buf.split_to(HEADER_LEN + body);
                    }
                }
                peer.buf.reserve(64 * 1024);
                let n = peer.io.read_buf(&mut peer.buf).await.expect("raw read");
                assert!(n > 0, "the socket closed the stream");
            }
        })
        .await
        .expect("no frame in time");
        let frame = FrameCodec::new()
            .decode(&mut bytes.clone())
            .expect("a valid frame")
            .expect("a whole frame");
        if !matches!(frame, Frame::Ping { .. } | Frame::Pong { .. }) {
            return (bytes, frame);
        }
    }
}

/// The algorithm a frame's header names.
fn compression_of(bytes: &BytesMut) -> u8 {
    bytes[6] & COMPRESSION_BITS
}

/// A payload of `len` zeros: compression always pays off on it.
fn zeros(len: usize) -> Bytes {
    Bytes::from(vec![0u8; len])
}

/// Checks a frame that carried `len` zeros: compressed with `algorithm`
/// (and far smaller on the wire) when `len >= min`, plain otherwise.
fn check(bytes: &BytesMut, payload: &Bytes, len: usize, min: usize, algorithm: Compression) {
    assert_eq!(payload, &zeros(len), "payload of {len} bytes damaged");
    if len >= min {
        assert_eq!(
            compression_of(bytes),
            algorithm.id(),
            "{len} bytes (minimum {min}) went uncompressed"
        );
        assert!(bytes.len() < len, "{} wire bytes for {len}", bytes.len());
    } else {
        assert_eq!(
            compression_of(bytes),
            Compression::None.id(),
            "{len} bytes (minimum {min}) were compressed"
        );
        assert!(bytes.len() > len);
    }
}

/// Publishes `min - 1` and `min` zero bytes from a publisher with
/// `algorithm` (and `min` set unless it is the default) to a raw subscriber.
async fn publications(algorithm: Compression, min: usize, set_min: bool) {
    let mut opts = SocketOptions::new();
    opts.compression(algorithm);
    if set_min {
        opts.compress_min_size(min);
    }
    let publisher = PubSocket::with_options(opts).unwrap();
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut sub = RawPeer::connect(&endpoint).await;
    sub.handshake_as(SocketType::Sub).await;
    sub.send_frame(&Frame::Subscribe {
        topic: Bytes::from_static(b"t"),
    })
    .await;
    assert!(publisher.wait_for_subscribers(1, HANG).await);
    for len in [min - 1, min, min + 1] {
        assert_eq!(publisher.publish("t", zeros(len)).unwrap(), 1);
        let (bytes, frame) = raw_frame(&mut sub).await;
        let Frame::Publish { payload, .. } = frame else {
            panic!("expected a publication, got {frame:?}");
        };
        check(&bytes, &payload, len, min, algorithm);
    }
    publisher.close(Duration::ZERO).await;
}

#[tokio::test]
async fn publications_under_the_default_minimum_of_1_kib_go_plain() {
    publications(Compression::Lz4, 1024, false).await;
}

#[tokio::test]
async fn publications_under_a_configured_minimum_go_plain() {
    publications(Compression::Zstd, 100, true).await;
}

#[tokio::test]
async fn requests_under_the_minimum_go_plain() {
    let min = 100;
    let mut opts = SocketOptions::new();
    opts.compression(Compression::Gzip).compress_min_size(min);
    let req = ReqSocket::with_options(opts).unwrap();
    let endpoint = req.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut rep = RawPeer::connect(&endpoint).await;
    rep.handshake_as(SocketType::Rep).await;
    assert!(req.wait_for_peers(1, HANG).await);
    for len in [min - 1, min] {
        let (reply, ()) = tokio::join!(req.request(zeros(len)), async {
            let (bytes, frame) = raw_frame(&mut rep).await;
            let Frame::Request { id, payload } = frame else {
                panic!("expected a request, got {frame:?}");
            };
            check(&bytes, &payload, len, min, Compression::Gzip);
            rep.send_frame(&Frame::Reply {
                id,
                payload: Bytes::from_static(b"ok"),
            })
            .await;
        });
        assert_eq!(reply.unwrap(), "ok");
    }
}

#[tokio::test]
async fn replies_under_the_minimum_go_plain() {
    let min = 100;
    let mut opts = SocketOptions::new();
    opts.compression(Compression::Snappy).compress_min_size(min);
    let rep = RepSocket::with_options(opts).unwrap();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap();
    // The reply is as long as the request asks.
    tokio::spawn(rep.serve(1, |payload, _| async move {
        zeros(std::str::from_utf8(&payload).unwrap().parse().unwrap())
    }));
    let mut req = RawPeer::connect(&endpoint).await;
    req.handshake_as(SocketType::Req).await;
    for (id, len) in [(1, min - 1), (2, min)] {
        req.send_frame(&Frame::Request {
            id,
            payload: Bytes::from(len.to_string()),
        })
        .await;
        let (bytes, frame) = raw_frame(&mut req).await;
        let Frame::Reply { id: got, payload } = frame else {
            panic!("expected a reply, got {frame:?}");
        };
        assert_eq!(got, id);
        check(&bytes, &payload, len, min, Compression::Snappy);
    }
}
