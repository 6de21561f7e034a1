//! One echo per transport: binds a listener for TCP, IPC, QUIC, TLS and inproc, connects
//! a client to each, sends msg-wire frames of a few sizes through it and prints what
//! happened.
//!
//! Run with `cargo run --example transports`; add `RUST_LOG=msg_transport=debug` to
//! see the transport's own events.

use std::time::Instant;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use msg_transport::{
    AnyListener, AnyTransport, Conn, Endpoint, Listener, PeerAddr, Quic, QuicOptions, Tls,
    TlsClientConfig, TlsOptions, Transport, dev,
};
use msg_wire::{Frame, FrameCodec};
use tokio::sync::oneshot;
use tokio_util::codec::Framed;

const SIZES: [usize; 3] = [16, 64 * 1024, 1024 * 1024];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    // ANCHOR: certs
    // A throwaway certificate for this machine's loopback names. The client trusts
    // exactly this certificate: verification stays on.
    let cert = dev::self_signed(["localhost", "127.0.0.1"])?;
    let mut client = TlsClientConfig::new();
    client.add_root(cert.certificate());

    let mut tls = TlsOptions::new();
    tls.server(cert.server_config()).client(client.clone());
    let mut quic = QuicOptions::new();
    quic.server(cert.server_config()).client(client);
    // ANCHOR_END: certs

    // ANCHOR: any_transport
    // TCP, IPC and inproc need no configuration; TLS and QUIC are added with theirs.
    let transport = AnyTransport::new()
        .with_tls(Tls::new(&tls)?)
        .with_quic(Quic::new(&quic)?);
    // ANCHOR_END: any_transport

    let dir = tempfile::tempdir()?;
    // ANCHOR: endpoints
    let endpoints = [
        "tcp://127.0.0.1:0".to_string(),
        format!("ipc://{}", dir.path().join("example.sock").display()),
        "quic://127.0.0.1:0".to_string(),
        "tls://127.0.0.1:0".to_string(),
        "inproc://example".to_string(),
    ];
    for endpoint in endpoints {
        let endpoint: Endpoint = endpoint.parse()?;
        echo_over(&transport, &endpoint)
            .await
            .with_context(|| format!("echo over {endpoint}"))?;
    }
    // ANCHOR_END: endpoints
    Ok(())
}

// ANCHOR: echo_over
/// Binds `endpoint`, connects to it and echoes one frame of each size.
async fn echo_over(transport: &AnyTransport, endpoint: &Endpoint) -> anyhow::Result<()> {
    let listener = transport.bind(endpoint).await?;
    // With port 0 the bound endpoint carries the port the system chose.
    let bound = listener.local_endpoint().clone();
    let (accepted_tx, accepted_rx) = oneshot::channel();
    let server = tokio::spawn(serve(listener, accepted_tx));

    let started = Instant::now();
    let (conn, peer) = transport.connect(&bound).await?;
    let connect_time = started.elapsed();
    let accepted_peer = accepted_rx.await?;
    println!("{}: bound {bound}", endpoint.scheme());
    println!("  client connected to {peer} in {connect_time:.1?}");
    println!("  server accepted {accepted_peer}");

    let mut framed = Framed::new(conn, FrameCodec::new());
    for (id, size) in (0u64..).zip(SIZES) {
        let payload = Bytes::from(vec![(id as u8).wrapping_add(1); size]);
        let started = Instant::now();
        framed
            .send(Frame::Request {
                id,
                payload: payload.clone(),
            })
            .await?;
        let reply = framed.next().await.context("connection closed")??;
        let round_trip = started.elapsed();
        match reply {
            Frame::Request {
                id: got,
                payload: echoed,
            } => {
                ensure!(
                    got == id && echoed == payload,
                    "echo differs from what was sent"
                );
            }
            other => bail!("unexpected frame {other:?}"),
        }
        println!("  {:>8} B echoed in {round_trip:.1?}", size);
    }
    server.abort();
    Ok(())
}
// ANCHOR_END: echo_over

// ANCHOR: serve
/// Accepts connections and echoes every frame back on the connection it came from.
async fn serve(mut listener: AnyListener, first_peer: oneshot::Sender<PeerAddr>) {
    let mut first_peer = Some(first_peer);
    while let Ok((conn, peer)) = listener.accept().await {
        if let Some(tx) = first_peer.take() {
            let _ = tx.send(peer);
        }
        tokio::spawn(echo(conn));
    }
}

async fn echo(conn: impl Conn) {
    let mut framed = Framed::new(conn, FrameCodec::new());
    while let Some(Ok(frame)) = framed.next().await {
        if framed.send(frame).await.is_err() {
            break;
        }
    }
}
// ANCHOR_END: serve
