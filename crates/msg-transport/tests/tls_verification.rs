//! TLS clients verify servers against their roots, servers can require client
//! certificates, and the dangerous option really does skip verification.

use crate::common::{chain, echo_conn, echo_sizes, spawn_echo_server, try_echo};
use msg_transport::{
    AnyTransport, Conn, Endpoint, Listener, Tls, TlsClientConfig, TlsOptions, TlsServerConfig,
    Transport, TransportError, dev,
};

const ANY_LOCAL: &str = "tls://127.0.0.1:0";

fn tls(server: Option<TlsServerConfig>, client: Option<TlsClientConfig>) -> Tls {
    let mut options = TlsOptions::new();
    if let Some(server) = server {
        options.server(server);
    }
    if let Some(client) = client {
        options.client(client);
    }
    Tls::new(&options).unwrap()
}

fn trusting(root: msg_transport::Certificate) -> TlsClientConfig {
    let mut client = TlsClientConfig::new();
    client.add_root(root);
    client
}

/// Binds a TLS echo server with `server`, returns its endpoint.
async fn echo_server(server: TlsServerConfig) -> Endpoint {
    let listener = tls(Some(server), None)
        .bind(&ANY_LOCAL.parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    spawn_echo_server(listener);
    endpoint
}

#[tokio::test]
async fn trusted_self_signed_certificate_is_accepted() {
    let cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let client = tls(None, Some(trusting(cert.certificate())));
    let (conn, _) = client.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[1, 70_000], 1).await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let server_cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let other = dev::self_signed(["127.0.0.1"]).unwrap();
    let endpoint = echo_server(server_cert.server_config()).await;
    let client = tls(None, Some(trusting(other.certificate())));
    let error = client.connect(&endpoint).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Tls { .. }),
        "{}",
        chain(&error)
    );
    let text = chain(&error);
    assert!(
        text.contains("tls handshake with tls://127.0.0.1:"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn certificate_for_another_name_is_refused() {
    let cert = dev::self_signed(["example.invalid"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let client = tls(None, Some(trusting(cert.certificate())));
    let error = client.connect(&endpoint).await.unwrap_err();
    assert!(
        matches!(error, TransportError::Tls { .. }),
        "{}",
        chain(&error)
    );
}

#[tokio::test]
async fn server_name_override_verifies_against_that_name() {
    let cert = dev::self_signed(["example.invalid"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let mut config = trusting(cert.certificate());
    config.server_name("example.invalid");
    let (conn, _) = tls(None, Some(config)).connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[10], 2).await;
}

#[tokio::test]
async fn host_name_endpoint_uses_dns_server_name() {
    let cert = dev::self_signed(["localhost"]).unwrap();
    let listener = tls(Some(cert.server_config()), None)
        .bind(&"tls://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_endpoint().socket_addr().unwrap().port();
    spawn_echo_server(listener);
    // localhost may resolve to ::1 first; the connect falls through to 127.0.0.1.
    let endpoint: Endpoint = format!("tls://localhost:{port}").parse().unwrap();
    let client = tls(None, Some(trusting(cert.certificate())));
    let (conn, _) = client.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[10], 3).await;
}

#[tokio::test]
async fn dangerous_skip_verification_connects_to_untrusted_server() {
    let cert = dev::self_signed(["somewhere.invalid"]).unwrap();
    let endpoint = echo_server(cert.server_config()).await;
    let mut config = TlsClientConfig::new();
    config.dangerous_skip_server_verification();
    let (conn, _) = tls(None, Some(config)).connect(&endpoint).await.unwrap();
    assert!(
        conn.peer_certificates().is_none(),
        "an unverified certificate is not reported as the peer's"
    );
    echo_sizes(conn, &[10], 4).await;
}

/// A client connection to a server presenting `cert`, which the client trusts, and
/// the server's side of it.
async fn connected(cert: &dev::DevCert) -> (msg_transport::TlsConn, msg_transport::TlsConn) {
    let mut listener = tls(Some(cert.server_config()), None)
        .bind(&ANY_LOCAL.parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let client = tls(None, Some(trusting(cert.certificate())));
    let (conn, _) = client.connect(&endpoint).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (conn, accepted)
}

#[tokio::test]
async fn client_sees_the_verified_server_certificate_and_no_client_certificate_is_asked() {
    let cert = dev::self_signed(["127.0.0.1", "server.example"]).unwrap();
    let (conn, accepted) = connected(&cert).await;
    let server = conn.peer_certificates().expect("the server's certificate");
    assert_eq!(server.end_entity(), cert.certificate().der());
    assert!(server.names().contains(b"server.example"));
    assert!(server.names().contains(b"127.0.0.1"));
    assert!(
        accepted.peer_certificates().is_none(),
        "without require_client_auth no client certificate is asked for"
    );
}

/// msg's crypto provider is aws-lc-rs, whose preferred key exchange is the
/// post-quantum hybrid X25519MLKEM768: two msg peers agree on it.
#[tokio::test]
async fn two_msg_peers_negotiate_post_quantum_key_exchange() {
    let cert = dev::self_signed(["127.0.0.1"]).unwrap();
    let (conn, accepted) = connected(&cert).await;
    assert_eq!(conn.key_exchange_group().as_deref(), Some("X25519MLKEM768"));
    assert_eq!(
        accepted.key_exchange_group().as_deref(),
        Some("X25519MLKEM768")
    );
}

#[tokio::test]
async fn client_without_roots_is_a_config_error() {
    let error = Tls::new(TlsOptions::new().client(TlsClientConfig::new())).unwrap_err();
    assert!(error.is_config());
    assert!(
        chain(&error).contains("no root certificates"),
        "{}",
        chain(&error)
    );
}

#[tokio::test]
async fn key_not_matching_certificate_is_a_config_error() {
    let a = dev::self_signed(["a"]).unwrap();
    let b = dev::self_signed(["b"]).unwrap();
    let server = TlsServerConfig::new(a.cert_chain(), b.private_key());
    let error = Tls::new(TlsOptions::new().server(server)).unwrap_err();
    assert!(error.is_config(), "{}", chain(&error));
}

/// A CA, a server it signed, and a server config that requires client certificates
/// signed by it.
struct Mtls {
    ca: dev::DevCa,
    endpoint: Endpoint,
    listener: msg_transport::TlsListener,
}

async fn mtls_server() -> Mtls {
    let ca = dev::DevCa::new("test ca").unwrap();
    let server_cert = ca.server_cert(["127.0.0.1"]).unwrap();
    let mut server = server_cert.server_config();
    server.require_client_auth(vec![ca.certificate()]);
    let listener = tls(Some(server), None)
        .bind(&ANY_LOCAL.parse().unwrap())
        .await
        .unwrap();
    Mtls {
        ca,
        endpoint: listener.local_endpoint().clone(),
        listener,
    }
}

#[tokio::test]
async fn mutual_tls_accepts_client_signed_by_trusted_ca() {
    let Mtls {
        ca,
        endpoint,
        mut listener,
    } = mtls_server().await;
    let client_cert = ca.client_cert("client one").unwrap();
    let mut config = trusting(ca.certificate());
    config.client_auth(client_cert.cert_chain(), client_cert.private_key());
    let client = tls(None, Some(config));

    let connecting = tokio::spawn(async move {
        let (conn, _) = client.connect(&endpoint).await.unwrap();
        echo_sizes(conn, &[1, 5000], 5).await;
    });
    let (conn, _) = listener.accept().await.unwrap();
    let presented = conn
        .peer_certificates()
        .expect("client presented no certificate");
    assert_eq!(presented.end_entity(), client_cert.certificate().der());
    assert_eq!(presented.chain().len(), 2, "leaf and ca");
    assert_eq!(
        presented.names().common_names().collect::<Vec<_>>(),
        ["client one"]
    );
    assert!(presented.names().contains(b"client one"));
    tokio::spawn(echo_conn(conn));
    connecting.await.unwrap();
}

#[tokio::test]
async fn mutual_tls_refuses_client_without_certificate() {
    let Mtls {
        ca,
        endpoint,
        mut listener,
    } = mtls_server().await;
    let anonymous = tls(None, Some(trusting(ca.certificate())));

    // With TLS 1.3 the client may finish its side of the handshake before the server
    // rejects it, so the refusal shows either at connect or at the first exchange.
    match anonymous.connect(&endpoint).await {
        Err(error) => assert!(
            matches!(error, TransportError::Tls { .. }),
            "{}",
            chain(&error)
        ),
        Ok((conn, _)) => {
            let outcome = try_echo(conn).await;
            assert!(
                outcome.is_err(),
                "client without certificate exchanged data"
            );
        }
    }

    // The server never handed the anonymous client to accept: the next accepted
    // connection is a client with a certificate.
    let client_cert = ca.client_cert("client two").unwrap();
    let mut config = trusting(ca.certificate());
    config.client_auth(client_cert.cert_chain(), client_cert.private_key());
    let good = tokio::spawn(async move {
        let (conn, _) = tls(None, Some(config)).connect(&endpoint).await.unwrap();
        echo_sizes(conn, &[3], 6).await;
    });
    let (conn, _) = listener.accept().await.unwrap();
    assert_eq!(
        conn.peer_certificates().unwrap().end_entity(),
        client_cert.certificate().der()
    );
    tokio::spawn(echo_conn(conn));
    good.await.unwrap();
}

#[tokio::test]
async fn mutual_tls_refuses_client_signed_by_another_ca() {
    let Mtls {
        ca,
        endpoint,
        listener,
    } = mtls_server().await;
    spawn_echo_server(listener);
    let rogue_ca = dev::DevCa::new("rogue ca").unwrap();
    let rogue = rogue_ca.client_cert("mallory").unwrap();
    let mut config = trusting(ca.certificate());
    config.client_auth(rogue.cert_chain(), rogue.private_key());
    match tls(None, Some(config)).connect(&endpoint).await {
        Err(error) => assert!(
            matches!(error, TransportError::Tls { .. }),
            "{}",
            chain(&error)
        ),
        Ok((conn, _)) => assert!(try_echo(conn).await.is_err()),
    }
}

#[tokio::test]
async fn any_transport_without_tls_config_names_what_is_missing() {
    let endpoint: Endpoint = ANY_LOCAL.parse().unwrap();
    let error = AnyTransport::new().bind(&endpoint).await.unwrap_err();
    assert!(matches!(error, TransportError::MissingConfig { .. }));
    assert_eq!(
        error.to_string(),
        "tls endpoint needs a TLS configuration (AnyTransport::with_tls)"
    );
    let client_only = tls(
        None,
        Some(
            TlsClientConfig::new()
                .dangerous_skip_server_verification()
                .clone(),
        ),
    );
    let error = client_only.bind(&endpoint).await.unwrap_err();
    assert!(
        error.to_string().contains("needs a server certificate"),
        "{error}"
    );
    let server_only = tls(Some(dev::self_signed(["x"]).unwrap().server_config()), None);
    let error = server_only.connect(&endpoint).await.unwrap_err();
    assert!(
        error.to_string().contains("needs a client configuration"),
        "{error}"
    );
}
