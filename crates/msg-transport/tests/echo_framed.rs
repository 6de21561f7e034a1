//! Every transport carries msg-wire frames of 1 B, 64 KiB and 16 MiB intact, both ways.

use crate::common::{Kind, echo_sizes, setup, start_echo};
use msg_transport::Transport;

const SIZES: [usize; 3] = [1, 64 * 1024, 16 * 1024 * 1024];

async fn echo_through(kind: Kind) {
    let setup = setup(kind);
    let (endpoint, server) = start_echo(&setup).await;
    let (conn, peer) = setup.transport.connect(&endpoint).await.unwrap();
    assert_eq!(peer.scheme(), endpoint.scheme());
    echo_sizes(conn, &SIZES, 1).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echoes_framed_payloads() {
    echo_through(Kind::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_echoes_framed_payloads() {
    echo_through(Kind::Ipc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_echoes_framed_payloads() {
    echo_through(Kind::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_echoes_framed_payloads() {
    echo_through(Kind::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inproc_echoes_framed_payloads() {
    echo_through(Kind::Inproc).await;
}

#[tokio::test(start_paused = true)]
async fn inproc_echoes_under_paused_time() {
    // The inproc transport needs no real I/O, so it works with a paused clock: the
    // property the socket drivers' deterministic tests rely on.
    echo_through(Kind::Inproc).await;
}
