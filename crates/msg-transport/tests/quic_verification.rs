//! QUIC clients verify servers like TLS clients do, and QUIC servers can require
//! client certificates.

use std::time::Duration;

use crate::common::{chain, echo_conn, echo_sizes, spawn_echo_server, try_echo};
use msg_transport::{
    Certificate, Conn, Endpoint, Listener, Quic, QuicOptions, TlsClientConfig, TlsServerConfig,
    Transport, TransportError, dev,
};

const ANY_LOCAL: &str = "quic://127.0.0.1:0";

fn quic(server: Option<TlsServerConfig>, client: Option<TlsClientConfig>) -> Quic {
    let mut options = QuicOptions::new();
    options.connect_timeout(Duration::from_secs(5));
    if let Some(server) = server {
        options.server(server);
    }
    if let Some(client) = client {
        options.client(client);
    }
    Quic::new(&options).unwrap()
}

fn trusting(root: Certificate) -> TlsClientConfig {
    let mut client = TlsClientConfig::new();
    client.add_root(root);
    client
}

async fn echo_server(server: TlsServerConfig) -> Endpoint {
    let listener = quic(Some(server), None)
        .bind(&ANY_LOCAL.parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    spawn_echo_server(listener);
    endpoint
}

#[tokio::test]
async fn trusted_certificate_is_accepted() {
    let cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let (conn, peer) = quic(None, Some(trusting(cert.certificate())))
        .connect(&endpoint)
        .await
        .unwrap();
    assert_eq!(peer.socket_addr(), endpoint.socket_addr());
    echo_sizes(conn, &[1, 70_000], 1).await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let other = dev::self_signed(["127.0.0.1"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let error = quic(None, Some(trusting(other.certificate())))
        .connect(&endpoint)
        .await
        .unwrap_err();
    assert!(
        matches!(error, TransportError::Quic { .. }),
        "{}",
        chain(&error)
    );
    let text = chain(&error);
    assert!(
        text.contains("quic connection with quic://127.0.0.1:"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn dangerous_skip_verification_connects() {
    let cert = dev::self_signed(["elsewhere.invalid"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let mut config = TlsClientConfig::new();
    config.dangerous_skip_server_verification();
    let (conn, _) = quic(None, Some(config)).connect(&endpoint).await.unwrap();
    assert!(
        conn.peer_certificates().is_none(),
        "an unverified certificate is not reported as the peer's"
    );
    echo_sizes(conn, &[10], 2).await;
}

#[tokio::test]
async fn mutual_tls_accepts_ca_signed_client_and_refuses_anonymous() {
    let ca = dev::DevCa::new("quic ca").unwrap();
    let server_cert = ca.server_cert(["127.0.0.1"]).unwrap();
    let mut server = server_cert.server_config();
    server.require_client_auth(vec![ca.certificate()]);
    let mut listener = quic(Some(server), None)
        .bind(&ANY_LOCAL.parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();

    // Anonymous client: refused at connect or at the first exchange.
    let anonymous = quic(None, Some(trusting(ca.certificate())));
    match anonymous.connect(&endpoint).await {
        Err(error) => assert!(
            matches!(error, TransportError::Quic { .. }),
            "{}",
            chain(&error)
        ),
        Ok((conn, _)) => assert!(
            try_echo(conn).await.is_err(),
            "anonymous client exchanged data"
        ),
    }

    // A client with a CA-signed certificate is the first one accepted.
    let client_cert = ca.client_cert("client").unwrap();
    let mut config = trusting(ca.certificate());
    config.client_auth(client_cert.cert_chain(), client_cert.private_key());
    let good = tokio::spawn(async move {
        let (conn, _) = quic(None, Some(config)).connect(&endpoint).await.unwrap();
        let server = conn.peer_certificates().expect("the server's certificate");
        assert!(server.names().contains(b"127.0.0.1"));
        echo_sizes(conn, &[1, 3000], 3).await;
    });
    let (conn, _) = listener.accept().await.unwrap();
    let presented = conn
        .peer_certificates()
        .expect("client presented no certificate");
    assert_eq!(presented.end_entity(), client_cert.certificate().der());
    assert!(presented.names().contains(b"client"));
    tokio::spawn(echo_conn(conn));
    good.await.unwrap();
}

#[tokio::test]
async fn ipv6_loopback_works_when_available() {
    // Some sandboxes have no IPv6 at all; then there is nothing to test.
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return;
    }
    let cert = dev::self_signed(["::1"]).unwrap();
    let transport = quic(
        Some(cert.server_config()),
        Some(trusting(cert.certificate())),
    );
    let listener = transport
        .bind(&"quic://[::1]:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    assert!(endpoint.to_string().starts_with("quic://[::1]:"));
    spawn_echo_server(listener);
    let (conn, _) = transport.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[100], 4).await;
}
