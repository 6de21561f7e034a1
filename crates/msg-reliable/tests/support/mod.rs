//! Helpers for the endpoint tests: identities, quick options, TLS/QUIC
//! setups (copied from msg-socket's tests), in-order receivers.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use msg_reliable::{Delivery, PeerId, ReliableOptions, ReliableSocket};
use msg_socket::SocketOptions;
use msg_socket::transport::dev;
use msg_socket::transport::{AnyTransport, Quic, QuicOptions, Tls, TlsClientConfig, TlsOptions};

/// Long enough for anything that should happen, short enough to fail a
/// hung test.
pub const WAIT: Duration = Duration::from_secs(30);

/// An `inproc://` endpoint string no other test uses, tagged `tag`.
pub fn unique_inproc(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "inproc://{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

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
        .expect("endpoint open")
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
/// round trip to the endpoint's task first, such as `pending()`: restored
/// deliveries are queued when the task starts.)
pub fn assert_nothing_delivered(sock: &ReliableSocket) {
    use futures::FutureExt;
    if let Some(Some(d)) = sock.recv().now_or_never() {
        panic!("unexpected delivery {d:?}");
    }
}

/// TLS and QUIC transports for a server and a client that trusts it.
pub fn secure_transports() -> (AnyTransport, AnyTransport) {
    let cert = dev::self_signed(["localhost", "127.0.0.1"]).expect("dev cert");
    let mut client_cfg = TlsClientConfig::new();
    client_cfg.add_root(cert.certificate());
    let mut tls_server = TlsOptions::new();
    tls_server.server(cert.server_config());
    let mut tls_client = TlsOptions::new();
    tls_client.client(client_cfg.clone());
    let mut quic_server = QuicOptions::new();
    quic_server.server(cert.server_config());
    let mut quic_client = QuicOptions::new();
    quic_client.client(client_cfg);
    let server = AnyTransport::new()
        .with_tls(Tls::new(&tls_server).expect("tls server"))
        .with_quic(Quic::new(&quic_server).expect("quic server"));
    let client = AnyTransport::new()
        .with_tls(Tls::new(&tls_client).expect("tls client"))
        .with_quic(Quic::new(&quic_client).expect("quic client"));
    (server, client)
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
