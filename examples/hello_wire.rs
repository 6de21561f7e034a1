//! The smallest complete msg program: a server that answers requests and a client that
//! sends one, over any transport that needs no certificates.
//!
//! Run with `cargo run --example hello_wire`, which uses TCP on a free port, or give
//! another endpoint: `cargo run --example hello_wire -- inproc://hello` (or `ipc://...`).
//!
//! This works one layer below msg's sockets: it sends msg-wire frames over a
//! msg-transport connection and skips the connection handshake, which the sockets
//! will do for you.

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use msg_transport::{AnyTransport, Conn, Endpoint, Listener, Transport};
use msg_wire::{Frame, FrameCodec};
use tokio_util::codec::Framed;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: bind
    let endpoint: Endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:0".to_string())
        .parse()?;
    let transport = AnyTransport::new();
    let mut listener = transport.bind(&endpoint).await?;
    // With port 0 the system picks a free port; the bound endpoint says which.
    let bound = listener.local_endpoint().clone();
    println!("listening on {bound}");
    // ANCHOR_END: bind

    // ANCHOR: server
    let server = tokio::spawn(async move {
        let (conn, peer) = listener.accept().await?;
        println!("server: accepted {peer}");
        answer(conn).await
    });
    // ANCHOR_END: server

    // ANCHOR: client
    let (conn, peer) = transport.connect(&bound).await?;
    let mut client = Framed::new(conn, FrameCodec::new());
    client
        .send(Frame::Request {
            id: 1,
            payload: Bytes::from_static(b"hello"),
        })
        .await?;
    match client.next().await.context("server hung up")?? {
        Frame::Reply { id: 1, payload } => {
            println!(
                "client: {peer} replied {:?}",
                String::from_utf8_lossy(&payload)
            );
        }
        other => bail!("expected the reply to request 1, got {other:?}"),
    }
    // ANCHOR_END: client

    // ANCHOR: close
    // Dropping the client's connection ends the server's stream of frames, so the
    // server task returns; its result says whether it saw anything wrong.
    drop(client);
    server.await??;
    // ANCHOR_END: close
    Ok(())
}

// ANCHOR: answer
/// Answers every request on `conn` with a reply carrying the same id and the payload in
/// upper case, until the peer hangs up.
async fn answer(conn: impl Conn) -> anyhow::Result<()> {
    let mut framed = Framed::new(conn, FrameCodec::new());
    while let Some(frame) = framed.next().await {
        match frame? {
            Frame::Request { id, payload } => {
                let payload = Bytes::from(payload.to_ascii_uppercase());
                framed.send(Frame::Reply { id, payload }).await?;
            }
            other => bail!("expected a request, got {other:?}"),
        }
    }
    Ok(())
}
// ANCHOR_END: answer
