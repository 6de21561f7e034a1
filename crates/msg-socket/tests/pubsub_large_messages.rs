//! Large messages arrive intact whether the application keeps them or drops
//! them at once: a dropped message's read buffer is reused for the next
//! one, and a kept one's never is.

use crate::common;

use std::time::Duration;

use crate::common::Setup;
use bytes::Bytes;
use msg_socket::{PubMessage, PubSocket, SubSocket};

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1024 * 1024;
/// Messages per round.
const COUNT: usize = 6;

async fn next(sub: &mut SubSocket) -> PubMessage {
    crate::common::next_message(sub, WAIT).await
}

/// Message `i`: a little over 1 MiB (sizes differ), filled with its number.
fn payload(i: usize) -> Bytes {
    Bytes::from(vec![i as u8; MIB + 4099 * i])
}

fn check(msg: &PubMessage, i: usize, name: &str) {
    let p = msg.payload();
    assert_eq!(p.len(), MIB + 4099 * i, "{name}: message {i}");
    assert!(p.iter().all(|&b| b == i as u8), "{name}: message {i}");
}

async fn large_messages_arrive_intact_kept_or_dropped(s: Setup) {
    let name = s.name;
    let publisher = PubSocket::with_options(s.server.clone()).unwrap();
    let endpoint = publisher.bind(&s.bind).await.unwrap().to_string();
    let mut sub = SubSocket::with_options(s.client.clone()).unwrap();
    sub.subscribe("").await;
    sub.connect(&endpoint).unwrap();
    assert!(publisher.wait_for_subscribers(1, WAIT).await, "{name}");

    // Kept: every message is still held while the next ones are read.
    for i in 0..COUNT {
        publisher.publish("big", payload(i)).expect("publish");
    }
    let mut kept = Vec::new();
    for i in 0..COUNT {
        let msg = next(&mut sub).await;
        check(&msg, i, name);
        kept.push(msg);
    }
    for (i, msg) in kept.iter().enumerate() {
        check(msg, i, name);
    }
    drop(kept);

    // Dropped on arrival: the next message may reuse its buffer.
    for i in 0..COUNT {
        publisher.publish("big", payload(i)).expect("publish");
    }
    for i in 0..COUNT {
        check(&next(&mut sub).await, i, name);
    }
    assert_eq!(publisher.stats().dropped_hwm, 0, "{name}");
    assert_eq!(sub.stats().dropped_hwm, 0, "{name}");
}

over_every_transport!(large_messages_arrive_intact_kept_or_dropped);
