//! Publish/subscribe over mutual TLS: the server proves who it is to the
//! client, and the client proves who it is to the server, both with
//! certificates signed by a development certificate authority.
//!
//! Run with `cargo run --example tls`.

use std::time::Duration;

use msg::prelude::*;
use msg::transport::{AnyTransport, Tls, TlsClientConfig, TlsOptions, dev::DevCa};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: certs
    let ca = DevCa::new("msg example CA")?;
    let server_cert = ca.server_cert(["localhost", "127.0.0.1"])?;
    let client_cert = ca.client_cert("subscriber-1")?;

    // Server: its own certificate, and only clients signed by the CA.
    let mut server_config = server_cert.server_config();
    server_config.require_client_auth(vec![ca.certificate()]);
    let mut server_tls = TlsOptions::new();
    server_tls.server(server_config);

    // Client: trusts the CA, presents its own certificate.
    let mut client_config = TlsClientConfig::new();
    client_config
        .add_root(ca.certificate())
        .client_auth(client_cert.cert_chain(), client_cert.private_key());
    let mut client_tls = TlsOptions::new();
    client_tls.client(client_config);
    // ANCHOR_END: certs

    // ANCHOR: sockets
    let mut server = SocketOptions::new();
    server
        .transport(AnyTransport::new().with_tls(Tls::new(&server_tls)?))
        // A subscriber's identity must be a name in its certificate.
        .bind_identity_to_certificate(true);
    let publisher = PubSocket::with_options(server)?;
    let endpoint = publisher.bind("tls://127.0.0.1:0").await?;
    println!("pub: bound {endpoint}");

    let mut client = SocketOptions::new();
    client
        .identity("subscriber-1")
        .transport(AnyTransport::new().with_tls(Tls::new(&client_tls)?));
    let mut subscriber = SubSocket::with_options(client)?;
    subscriber.subscribe("alerts.").await;
    subscriber.connect(&endpoint.to_string())?;
    // ANCHOR_END: sockets

    publisher
        .wait_for_subscribers(1, Duration::from_secs(5))
        .await;
    publisher.publish("alerts.disk", "disk 91% full on db-2")?;
    let msg = subscriber.next().await.expect("socket open");
    println!(
        "sub: {} = {} (over mutual TLS)",
        String::from_utf8_lossy(msg.topic()),
        String::from_utf8_lossy(msg.payload())
    );
    Ok(())
}
