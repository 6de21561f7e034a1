//! Request/reply over QUIC, with a development certificate the client
//! trusts explicitly.
//!
//! Run with `cargo run --example quic`.

use msg::prelude::*;
use msg::transport::{AnyTransport, Quic, QuicOptions, TlsClientConfig, dev};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: certs
    // For development: a self-signed certificate. In production, load your
    // own with `Certificate::from_pem_file` and `PrivateKey::from_pem_file`.
    let cert = dev::self_signed(["localhost", "127.0.0.1"])?;

    let mut server_quic = QuicOptions::new();
    server_quic.server(cert.server_config());
    let mut server = SocketOptions::new();
    server.transport(AnyTransport::new().with_quic(Quic::new(&server_quic)?));

    // The client verifies the server against the roots it is given.
    let mut roots = TlsClientConfig::new();
    roots.add_root(cert.certificate());
    let mut client_quic = QuicOptions::new();
    client_quic.client(roots);
    let mut client = SocketOptions::new();
    client.transport(AnyTransport::new().with_quic(Quic::new(&client_quic)?));
    // ANCHOR_END: certs

    // ANCHOR: sockets
    let rep = RepSocket::with_options(server)?;
    let endpoint = rep.bind("quic://127.0.0.1:0").await?;
    println!("rep: bound {endpoint}");
    tokio::spawn(rep.serve(8, |payload, peer| async move {
        println!("rep: {} bytes from {}", payload.len(), peer.addr);
        payload
    }));

    let req = ReqSocket::with_options(client)?;
    req.connect(&endpoint.to_string())?;
    for size in [16usize, 64 * 1024, 1024 * 1024] {
        let started = std::time::Instant::now();
        let reply = req.request(vec![7u8; size]).await?;
        println!(
            "req: {} bytes echoed over QUIC in {:?}",
            reply.len(),
            started.elapsed()
        );
    }
    // ANCHOR_END: sockets
    Ok(())
}
