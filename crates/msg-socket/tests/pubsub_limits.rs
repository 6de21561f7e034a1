//! Pub/Sub limits: topics over 65,535 bytes are refused at publish time;
//! a subscriber that asks for too many (or too large) subscriptions, or
//! sends what a subscriber never sends, has its connection closed while the
//! other subscribers are served throughout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use msg_socket::wire::{Frame, FrameCodec, HandshakeCodec, Hello, Reason, SocketType, WireError};
use msg_socket::{PubMessage, PubSocket, PublishError, SocketEvent, SubSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// A hand-driven subscriber: a TCP stream that has done the handshake.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl Raw {
    async fn connect(endpoint: &str) -> Raw {
        let addr = endpoint.trim_start_matches("tcp://");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut handshake = HandshakeCodec::new();
        let mut out = BytesMut::new();
        handshake
            .encode_hello(
                &Hello::new(SocketType::Sub, Bytes::from_static(b"raw"), None),
                &mut out,
            )
            .unwrap();
        stream.write_all(&out).await.unwrap();
        let mut buf = BytesMut::new();
        let answer = loop {
            if let Some(answer) = handshake.decode_answer(&mut buf).unwrap() {
                break answer;
            }
            assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "closed");
        };
        assert!(answer.is_accept(), "{answer:?}");
        Raw {
            stream,
            buf,
            codec: FrameCodec::new(),
        }
    }

    async fn send(&mut self, frames: impl IntoIterator<Item = Frame>) {
        let mut out = BytesMut::new();
        for frame in frames {
            self.codec.encode(&frame, &mut out).unwrap();
        }
        self.stream.write_all(&out).await.unwrap();
    }

    /// Reads until the publisher closes the connection; returns its `Close`
    /// frame, if it arrived before the end (a reset may overtake it).
    async fn closed_by_peer(&mut self) -> Option<(Reason, String)> {
        loop {
            while let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                if let Frame::Close { code, text } = frame {
                    return Some((code, text));
                }
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the publisher closes the connection");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// A publisher on TCP with a well-behaved subscriber to everything.
async fn publisher_with_a_good_subscriber() -> (PubSocket, String, SubSocket) {
    let publisher = PubSocket::new();
    let endpoint = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let good = SubSocket::new();
    good.subscribe("").await;
    good.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(1, WAIT).await);
    (publisher, endpoint, good)
}

/// The good subscriber still gets everything, in order.
async fn still_served(publisher: &PubSocket, good: &mut SubSocket, from: u64) {
    for i in 0..100 {
        assert!(publisher.publish("t", format!("{i}")).unwrap() >= 1);
    }
    for i in 0..100 {
        let m = next(good).await;
        assert_eq!(
            (m.seq(), m.payload().as_ref()),
            (from + i, format!("{i}").as_bytes())
        );
    }
}

/// Sends `frames` from a raw subscriber and checks it is closed for
/// `expect`, counted and reported, while the good subscriber is served
/// before, during and after.
async fn offender_is_closed(frames: Vec<Frame>, expect: &str) {
    let (publisher, endpoint, mut good) = publisher_with_a_good_subscriber().await;
    let mut events = publisher.events();
    still_served(&publisher, &mut good, 1).await;

    let mut raw = Raw::connect(&endpoint).await;
    raw.send(frames).await;
    still_served(&publisher, &mut good, 101).await;
    if let Some((code, text)) = raw.closed_by_peer().await {
        assert_eq!(text, expect);
        assert_ne!(code, Reason::Normal);
    }
    let misbehaved = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await.expect("events") {
                SocketEvent::PeerMisbehaved { error, .. } => break error,
                _ => continue,
            }
        }
    })
    .await
    .expect("a PeerMisbehaved event");
    assert!(misbehaved.contains(expect), "{misbehaved}");
    assert_eq!(publisher.stats().protocol_errors, 1);
    assert_eq!(publisher.subscribers(), 1, "only the good one is left");
    still_served(&publisher, &mut good, 201).await;
}

#[tokio::test]
async fn a_topic_over_65535_bytes_is_refused_at_publish() {
    let (publisher, _endpoint, mut good) = publisher_with_a_good_subscriber().await;
    let too_long = Bytes::from(vec![b't'; 65_536]);
    match publisher.publish(too_long, "x") {
        Err(PublishError::Encode(WireError::TopicTooLong(65_536))) => {}
        other => panic!("expected TopicTooLong, got {other:?}"),
    }
    // The longest topic allowed goes through, intact, and numbering did
    // not skip for the refused one.
    let longest = Bytes::from(vec![b't'; 65_535]);
    assert_eq!(publisher.publish(longest.clone(), "y").unwrap(), 1);
    let m = next(&mut good).await;
    assert_eq!((m.topic(), m.seq()), (&longest, 1));
    assert_eq!(publisher.stats().dropped_hwm, 0);
}

/// 10,000 distinct prefixes are allowed; the 10,001st closes the
/// connection.
#[tokio::test]
async fn a_subscriber_over_the_subscription_limit_is_closed_and_others_carry_on() {
    let frames = (0..10_001)
        .map(|i| Frame::Subscribe {
            topic: format!("prefix.{i}").into(),
        })
        .collect();
    offender_is_closed(frames, "too many subscriptions").await;
}

/// Prefixes may be 64 KiB each, so their total size is limited too (1 MiB
/// per subscriber).
#[tokio::test]
async fn a_subscriber_over_the_subscription_bytes_limit_is_closed() {
    let frames = (0..17)
        .map(|i| Frame::Subscribe {
            topic: Bytes::from(vec![b'a' + i as u8; 64_000]),
        })
        .collect();
    offender_is_closed(frames, "subscriptions too large").await;
}

/// A subscriber that publishes is breaking the protocol.
#[tokio::test]
async fn a_subscriber_that_publishes_is_closed() {
    let frames = vec![Frame::Publish {
        topic: "t".into(),
        seq: 1,
        payload: "x".into(),
    }];
    offender_is_closed(frames, "a PUB socket only accepts subscriptions").await;
}

/// Resending a subscription the publisher already has (as a reconnecting
/// subscriber does) is no offence and does not count toward the limit:
/// after 20,000 repeats of one prefix the connection is still open, and is
/// closed only for the publication that follows them.
#[tokio::test]
async fn repeated_subscriptions_do_not_count_toward_the_limit() {
    let mut frames: Vec<Frame> = (0..20_000)
        .map(|_| Frame::Subscribe {
            topic: "again".into(),
        })
        .collect();
    frames.push(Frame::Publish {
        topic: "t".into(),
        seq: 1,
        payload: "x".into(),
    });
    offender_is_closed(frames, "a PUB socket only accepts subscriptions").await;
}
