//! One `RUST_LOG`-style filter shows a message's whole life, from
//! `send_to` to the acknowledgement, with the socket's identity and store
//! on every event.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// A writer into a shared buffer, for the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The index of the first line at or after `from` that contains every one
/// of `needles`.
fn find(lines: &[&str], from: usize, needles: &[&str]) -> usize {
    lines[from..]
        .iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
        .map(|i| from + i)
        .unwrap_or_else(|| {
            panic!(
                "no line with {needles:?} after line {from}:\n{}",
                lines.join("\n")
            )
        })
}

#[test]
fn a_message_s_life_from_send_to_to_acknowledgement_at_trace_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("msg_reliable=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The subscriber is this thread's default, and a current-thread runtime
    // runs every task (both sockets' drivers) on this thread.
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, b, bind, _dir) = memory_pair("tcp", fast()).await;
            link(&a, &b, &bind).await;
            let seq = a.send_to(&pid("b"), "traced").await.unwrap();
            assert_eq!(seq, 1);
            let delivery = next(&b).await;
            delivery.ack().await.unwrap();
            tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), 1))
                .await
                .expect("acknowledged in time")
                .unwrap();
            a.shutdown(Duration::from_secs(1)).await;
            b.shutdown(Duration::from_secs(1)).await;
        });
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let a = "reliable{identity=a store=MemoryBackend}";
    let b = "reliable{identity=b store=MemoryBackend}";
    // In the order it happens, each on the side where it happens.
    let stored = find(&lines, 0, &[a, "stored for sending", "peer=b", "first=1"]);
    let sent = find(&lines, stored, &[a, "sending", "peer=b", "first=1"]);
    let received = find(
        &lines,
        sent,
        &[b, "received and stored", "peer=a", "last=1"],
    );
    let delivered = find(
        &lines,
        received,
        &[b, "delivered to the application", "seq=1"],
    );
    let app_ack = find(
        &lines,
        delivered,
        &[b, "acknowledged by the application", "first=1"],
    );
    find(
        &lines,
        app_ack.min(received),
        &[a, "acknowledged by the peer", "peer=b", "up_to=1"],
    );
}
