//! Listeners serve many clients at once, and a client that stalls its handshake does
//! not hold up the others.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Kind, echo_frames, echo_sizes, setup, start_echo};
use msg_transport::{Endpoint, Listener, Transport};
use msg_wire::FrameCodec;
use tokio::io::AsyncWriteExt;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio_util::codec::Framed;

const CLIENTS: usize = 100;

/// How many connections the server holds open now, and the most it ever held at once.
#[derive(Default)]
struct OpenGauge {
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl OpenGauge {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An echo server that counts its open connections: a connection counts from its
/// accept until its echo loop ends, when the client has closed it.
fn spawn_counting_echo_server<L: Listener>(
    mut listener: L,
    gauge: Arc<OpenGauge>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((conn, _peer)) = listener.accept().await {
            gauge.opened();
            let gauge = gauge.clone();
            tokio::spawn(async move {
                common::echo_conn(conn).await;
                gauge.closed();
            });
        }
    })
}

/// `CLIENTS` clients connect and echo once, then wait at a barrier until all of them
/// have, so that every connection is open at the same moment; then each echoes again
/// and closes. The server must have held all of them open at once.
async fn many_clients(kind: Kind) {
    let setup = setup(kind);
    let listener = setup.transport.bind(&setup.endpoint).await.unwrap();
    let endpoint = listener.local_endpoint().clone();
    let gauge = Arc::new(OpenGauge::default());
    let server = spawn_counting_echo_server(listener, gauge.clone());
    let all_open = Arc::new(Barrier::new(CLIENTS));
    let mut clients = JoinSet::new();
    for i in 0..CLIENTS {
        let transport = setup.transport.clone();
        let endpoint = endpoint.clone();
        let all_open = all_open.clone();
        clients.spawn(async move {
            let (conn, peer) = transport.connect(&endpoint).await.unwrap();
            let mut framed = Framed::new(conn, FrameCodec::new());
            // Distinct seeds: a reply delivered to the wrong client would not match.
            // An echo proves the server accepted this connection and serves it.
            echo_frames(&mut framed, &[10, 1000], i as u8).await;
            all_open.wait().await;
            // Every connection is still usable with all the others open.
            echo_frames(&mut framed, &[100], i as u8).await;
            peer
        });
    }
    // A client that fails panics its task and fails the test here; a regression that
    // keeps connections from being open together would block the barrier forever, and
    // the guard turns that into a failure. It is never waited for otherwise.
    let guard = Duration::from_secs(120);
    let peers = tokio::time::timeout(guard, async {
        let mut peers = Vec::new();
        while let Some(done) = clients.join_next().await {
            peers.push(done.unwrap());
        }
        peers
    })
    .await
    .expect("the clients never all had their connections open at once");
    assert_eq!(peers.len(), CLIENTS);
    assert_eq!(
        gauge.peak.load(Ordering::SeqCst),
        CLIENTS,
        "the server must hold every connection open at once"
    );
    if matches!(kind, Kind::Ipc | Kind::Inproc) {
        let ids: HashSet<_> = peers.iter().map(|p| p.conn_id().unwrap()).collect();
        assert_eq!(ids.len(), CLIENTS, "connection ids must be unique");
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_serves_100_concurrent_clients() {
    many_clients(Kind::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_serves_100_concurrent_clients() {
    many_clients(Kind::Ipc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_serves_100_concurrent_clients() {
    many_clients(Kind::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_100_concurrent_clients() {
    many_clients(Kind::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inproc_serves_100_concurrent_clients() {
    many_clients(Kind::Inproc).await;
}

fn tcp_addr_of(endpoint: &Endpoint) -> std::net::SocketAddr {
    endpoint.socket_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_client_does_not_block_accept() {
    let setup = setup(Kind::Tls);
    let mut listener = setup.transport.bind(&setup.endpoint).await.unwrap();
    let endpoint = listener.local_endpoint().clone();

    // First client: a bare TCP connection that never sends its ClientHello.
    let stalled = tokio::net::TcpStream::connect(tcp_addr_of(&endpoint))
        .await
        .unwrap();

    // Second client: a real one. Its connection must be accepted and echoed while
    // the first is still connected and silent.
    let transport = setup.transport.clone();
    let client = tokio::spawn(async move {
        let (conn, _) = transport.connect(&endpoint).await.unwrap();
        echo_sizes(conn, &[1, 4096], 3).await;
    });
    // The timeout only turns a regression (accept stuck behind the stalled
    // handshake) into a failure instead of a hang; the test never waits for it.
    let guard = std::time::Duration::from_secs(8);
    let (conn, peer) = tokio::time::timeout(guard, listener.accept())
        .await
        .expect("accept is blocked by the stalled client")
        .unwrap();
    let local_of_stalled = stalled.local_addr().unwrap();
    assert_ne!(peer.socket_addr(), Some(local_of_stalled));
    tokio::spawn(common::echo_conn(conn));
    client.await.unwrap();
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_garbage_client_is_dropped_and_others_served() {
    let setup = setup(Kind::Tls);
    let (endpoint, server) = start_echo(&setup).await;

    let mut garbage = tokio::net::TcpStream::connect(tcp_addr_of(&endpoint))
        .await
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: nope\r\n\r\n")
        .await
        .unwrap();

    let (conn, _) = setup.transport.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[100], 4).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_is_cancel_safe() {
    // A select! that drops the accept future must not lose the connection.
    for kind in [Kind::Tcp, Kind::Tls, Kind::Quic, Kind::Inproc, Kind::Ipc] {
        let setup = setup(kind);
        let mut listener = setup.transport.bind(&setup.endpoint).await.unwrap();
        let endpoint = listener.local_endpoint().clone();
        tokio::select! {
            biased;
            _ = listener.accept() => panic!("nobody connected yet"),
            () = tokio::task::yield_now() => {}
        }
        let transport = setup.transport.clone();
        let client = tokio::spawn(async move {
            let (conn, _) = transport.connect(&endpoint).await.unwrap();
            echo_sizes(conn, &[5], 5).await;
        });
        let (conn, _) = listener.accept().await.unwrap();
        tokio::spawn(common::echo_conn(conn));
        client.await.unwrap();
    }
}
