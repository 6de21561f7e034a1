//! Connecting where nothing listens fails fast, with an error that says so.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{chain, trusted_quic, trusted_tls, unique};
use msg_transport::{
    AnyTransport, Endpoint, Inproc, Ipc, Listener, QuicOptions, Tcp, TlsClientConfig, Transport,
    TransportError, dev,
};

/// A loopback port that was free a moment ago and has nothing listening now.
fn closed_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback UDP port that was free a moment ago and has no socket now.
fn closed_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Limit for a connect that should fail at once. Only a regression ever waits for it;
/// it turns a hang into a failure and asserts nothing about timing.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn assert_refused(error: &TransportError, endpoint: &Endpoint) {
    assert!(error.is_refused(), "expected refused, got {}", chain(error));
    let text = error.to_string();
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains(&endpoint.to_string()), "{text}");
}

#[tokio::test]
async fn tcp_connect_to_closed_port_is_refused() {
    let endpoint: Endpoint = format!("tcp://127.0.0.1:{}", closed_tcp_port())
        .parse()
        .unwrap();
    let started = Instant::now();
    let error = Tcp::new().connect(&endpoint).await.unwrap_err();
    assert_refused(&error, &endpoint);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn tls_connect_to_closed_port_is_refused() {
    let endpoint: Endpoint = format!("tls://127.0.0.1:{}", closed_tcp_port())
        .parse()
        .unwrap();
    let error = trusted_tls().connect(&endpoint).await.unwrap_err();
    assert_refused(&error, &endpoint);
}

#[tokio::test]
async fn ipc_connect_to_missing_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::ipc(dir.path().join("nobody.sock"));
    let error = Ipc.connect(&endpoint).await.unwrap_err();
    assert_refused(&error, &endpoint);
}

#[tokio::test]
async fn ipc_connect_to_stale_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A socket file whose listener is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let endpoint = Endpoint::ipc(&path);
    let error = Ipc.connect(&endpoint).await.unwrap_err();
    assert_refused(&error, &endpoint);
}

#[tokio::test]
async fn inproc_connect_to_unknown_name_is_refused() {
    let endpoint = Endpoint::inproc(unique("nobody"));
    let error = Inproc.connect(&endpoint).await.unwrap_err();
    assert_refused(&error, &endpoint);
}

#[tokio::test]
async fn quic_connect_to_closed_port_is_refused() {
    // Default options: a 10 s connect timeout. UDP has no "connection refused", but
    // the transport's probe hears the ICMP "port unreachable" and fails at once;
    // waiting for the timeout would give a timeout error instead.
    let endpoint: Endpoint = format!("quic://127.0.0.1:{}", closed_udp_port())
        .parse()
        .unwrap();
    let quic = trusted_quic();
    let error = tokio::time::timeout(HANG_GUARD, quic.connect(&endpoint))
        .await
        .expect("quic connect to a closed port hung")
        .unwrap_err();
    assert_refused(&error, &endpoint);
    assert!(!error.is_timeout(), "{}", chain(&error));
}

#[tokio::test]
async fn quic_connect_to_closed_ipv6_port_is_refused() {
    let Ok(socket) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: no IPv6 loopback");
        return;
    };
    let endpoint = Endpoint::quic(socket.local_addr().unwrap());
    drop(socket);
    let error = tokio::time::timeout(HANG_GUARD, trusted_quic().connect(&endpoint))
        .await
        .expect("quic connect to a closed port hung")
        .unwrap_err();
    assert_refused(&error, &endpoint);
}

#[tokio::test]
async fn quic_connect_to_listening_server_is_not_refused() {
    // The probe reaches the server too; it answers with Version Negotiation, which
    // must leave the real handshake alone, connection after connection.
    let quic = trusted_quic();
    let mut listener = quic
        .bind(&"quic://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    for seed in 0..3 {
        let (client, _) = tokio::time::timeout(HANG_GUARD, quic.connect(&endpoint))
            .await
            .expect("quic connect hung")
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        tokio::spawn(common::echo_conn(server_side));
        common::echo_sizes(client, &[1, 2000], seed).await;
    }
}

#[tokio::test]
async fn quic_connect_to_silent_port_times_out() {
    // A port whose socket is open but never answers (no QUIC server, or a firewall
    // that drops) cannot refuse: the probe hears nothing, and the connect timeout
    // makes the silence an error instead of a hang.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::quic(silent.local_addr().unwrap());
    let cert = dev::self_signed(["localhost"]).unwrap();
    let mut client = TlsClientConfig::new();
    client.add_root(cert.certificate());
    let mut options = QuicOptions::new();
    options
        .client(client)
        .connect_timeout(Duration::from_millis(300));
    let quic = msg_transport::Quic::new(&options).unwrap();

    let started = Instant::now();
    let error = quic.connect(&endpoint).await.unwrap_err();
    assert!(
        error.is_timeout(),
        "expected timeout, got {}",
        chain(&error)
    );
    let text = error.to_string();
    assert!(text.contains("timed out"), "{text}");
    assert!(text.contains(&endpoint.to_string()), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn quic_listener_drop_stops_new_connections_but_keeps_accepted_ones() {
    let cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let mut client = TlsClientConfig::new();
    client.add_root(cert.certificate());
    let mut options = QuicOptions::new();
    options
        .server(cert.server_config())
        .client(client)
        .connect_timeout(Duration::from_millis(300));
    let quic = msg_transport::Quic::new(&options).unwrap();

    let mut listener = quic
        .bind(&"quic://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let (client, _) = quic.connect(&endpoint).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    drop(listener);

    // The UDP socket stays open for the accepted connection, but new clients get
    // no handshake; the port is not closed, so it cannot refuse them either.
    let error = quic.connect(&endpoint).await.unwrap_err();
    assert!(error.is_timeout(), "{}", chain(&error));

    // The accepted connection still works.
    tokio::spawn(common::echo_conn(server_side));
    common::echo_sizes(client, &[10, 20_000], 8).await;
}

#[tokio::test]
async fn any_transport_reports_refused_for_each_scheme() {
    let transport = AnyTransport::new()
        .with_tls(trusted_tls())
        .with_quic(trusted_quic());
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        format!("tcp://127.0.0.1:{}", closed_tcp_port()),
        format!("tls://127.0.0.1:{}", closed_tcp_port()),
        format!("quic://127.0.0.1:{}", closed_udp_port()),
        format!("ipc://{}", dir.path().join("none.sock").display()),
        format!("inproc://{}", unique("none")),
    ];
    for endpoint in endpoints {
        let endpoint: Endpoint = endpoint.parse().unwrap();
        let error = tokio::time::timeout(HANG_GUARD, transport.connect(&endpoint))
            .await
            .unwrap_or_else(|_| panic!("connect to {endpoint} hung"))
            .unwrap_err();
        assert_refused(&error, &endpoint);
    }
}
