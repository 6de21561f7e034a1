//! Helpers for the socket tests: identities, quick options, setups per
//! transport, in-order receivers.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use msg_reliable::{Delivery, PeerId, ReliableOptions, ReliableSocket};
use msg_socket::SocketOptions;
pub use msg_testkit::{secure_transports, unique_inproc};

/// Long enough for anything that should happen, short enough to fail a
/// hung test.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn pid(name: &str) -> PeerId {
    name.parse().unwrap()
}

/// Fast reconnects: tens of milliseconds, not seconds.
pub fn quick() -> SocketOptions {
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    o
}

/// A short ack timeout, so a loss not seen as a cut is repaired quickly.
pub fn fast() -> ReliableOptions {
    let mut o = ReliableOptions::new();
    o.ack_timeout(Duration::from_millis(200))
        .max_ack_timeout(Duration::from_secs(2));
    o
}

pub fn payload(from: &str, to: &str, seq: u64) -> Bytes {
    Bytes::from(format!("{from}->{to} #{seq}"))
}

/// Sends `count` messages, numbered from 1, to `to`, one after the other;
/// checks each gets the next sequence number.
pub async fn send_all(sock: &ReliableSocket, from: &str, to: &str, first: u64, count: u64) {
    let peer = pid(to);
    for seq in first..first + count {
        let got = sock.send_to(&peer, payload(from, to, seq)).await.unwrap();
        assert_eq!(got, seq, "{from}->{to}");
    }
}

/// The next delivery, failing the test if none comes within [`WAIT`].
pub async fn next(sock: &ReliableSocket) -> Delivery {
    tokio::time::timeout(WAIT, sock.recv())
        .await
        .expect("a delivery in time")
        .expect("socket open")
}

/// Receives messages `first..first + count` from `from`, in order, each
/// once, acknowledging each.
pub async fn receive_all(sock: &ReliableSocket, from: &str, to: &str, first: u64, count: u64) {
    for seq in first..first + count {
        let d = next(sock).await;
        assert_eq!(d.peer(), &pid(from));
        assert_eq!(d.seq(), seq, "{from}->{to}: out of order or duplicated");
        assert_eq!(d.payload(), &payload(from, to, seq));
        d.ack().await.unwrap();
    }
}

/// Nothing is waiting to be delivered right now. (After a restart, make a
/// round trip to the socket's task first, such as `pending()`: restored
/// deliveries are queued when the task starts.)
pub fn assert_nothing_delivered(sock: &ReliableSocket) {
    use futures::FutureExt;
    if let Some(Some(d)) = sock.recv().now_or_never() {
        panic!("unexpected delivery {d:?}");
    }
}

/// Socket options for a binding and a connecting side over `transport`
/// (`tcp`, `ipc`, `tls`, `quic`, `inproc`), and the endpoint to bind. The
/// temporary directory (for IPC) must outlive the sockets.
pub fn setup(transport: &str) -> (SocketOptions, SocketOptions, String, tempfile::TempDir) {
    let (server_t, client_t) = secure_transports();
    let mut server = quick();
    let mut client = quick();
    server.transport(server_t);
    client.transport(client_t);
    let dir = tempfile::tempdir().unwrap();
    let bind = match transport {
        "ipc" => format!("ipc://{}", dir.path().join("sock").display()),
        "inproc" => format!(
            "inproc://reliable-{}-{}",
            std::process::id(),
            dir.path().display()
        ),
        other => format!("{other}://127.0.0.1:0"),
    };
    (server, client, bind, dir)
}

/// Reliable sockets `a` (the binding side) and `b` (the connecting side)
/// over `transport`, each with `opts` and an in-memory store, not yet
/// connected (see [`link`]); the endpoint for `a` to bind, and the
/// temporary directory that must outlive them.
pub async fn memory_pair(
    transport: &str,
    opts: ReliableOptions,
) -> (ReliableSocket, ReliableSocket, String, tempfile::TempDir) {
    let (server, client, bind, dir) = setup(transport);
    let a = ReliableSocket::open_with_socket_options(
        pid("a"),
        opts.clone(),
        server,
        msg_reliable::MemoryBackend::new(),
    )
    .await
    .unwrap();
    let b = ReliableSocket::open_with_socket_options(
        pid("b"),
        opts,
        client,
        msg_reliable::MemoryBackend::new(),
    )
    .await
    .unwrap();
    (a, b, bind, dir)
}

/// Binds `a` on `bind` and connects `b` to it.
pub async fn link(a: &ReliableSocket, b: &ReliableSocket, bind: &str) {
    let endpoint = a.bind(bind).await.unwrap();
    b.connect(&endpoint.to_string()).unwrap();
}
