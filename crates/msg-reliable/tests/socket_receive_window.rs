//! The receive window bounds what waits for the application: an
//! application that does not take its deliveries holds at most
//! `recv_window` of them, however many the peer sends, and taking and
//! acknowledging them lets the next ones in.

use std::time::Duration;

use futures::FutureExt;
use msg_reliable::{AckMode, Delivery, MemoryBackend, ReliableSocket};

use crate::support::*;

const WINDOW: usize = 8;
const SENT: u64 = 40;

/// Every delivery ready right now, without waiting.
fn ready_now(sock: &ReliableSocket) -> Vec<Delivery> {
    let mut buf = Vec::new();
    sock.recv_many(&mut buf, usize::MAX)
        .now_or_never()
        .expect("recv_many waits only when nothing is ready");
    buf
}

async fn the_window_bounds_waiting_deliveries(mode: AckMode) {
    let mut receiver_opts = fast();
    receiver_opts
        .ack_mode(mode)
        .window(WINDOW)
        .recv_window(WINDOW);
    let a =
        ReliableSocket::open_with_socket_options(pid("a"), fast(), quick(), MemoryBackend::new())
            .await
            .unwrap();
    let b = ReliableSocket::open_with_socket_options(
        pid("b"),
        receiver_opts,
        quick(),
        MemoryBackend::new(),
    )
    .await
    .unwrap();
    let endpoint = a.bind(&unique_inproc("recv-window")).await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();
    send_all(&a, "a", "b", 1, SENT).await;

    let mut next = 1;
    while next <= SENT {
        // The receiver stores (and acknowledges) a window's worth, then
        // accepts nothing more while its application sits on them, however
        // long that lasts and however often the sender retransmits.
        let window_end = (next + WINDOW as u64 - 1).min(SENT);
        tokio::time::timeout(WAIT, a.wait_acked(&pid("b"), window_end))
            .await
            .expect("a window's worth accepted")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(a.acked(&pid("b")), window_end, "accepted past the window");

        let waiting = ready_now(&b);
        let seqs: Vec<u64> = waiting.iter().map(Delivery::seq).collect();
        assert_eq!(seqs, (next..=window_end).collect::<Vec<_>>(), "{mode:?}");
        // In manual mode the application acknowledges; in auto mode taking
        // them did.
        Delivery::ack_all(waiting).await.unwrap();
        next = window_end + 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_mode_application_never_has_more_than_the_window_waiting() {
    the_window_bounds_waiting_deliveries(AckMode::Manual).await;
}

#[tokio::test(start_paused = true)]
async fn an_auto_mode_application_never_has_more_than_the_window_waiting() {
    the_window_bounds_waiting_deliveries(AckMode::Auto).await;
}
