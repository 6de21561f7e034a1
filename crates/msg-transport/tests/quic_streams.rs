//! A QUIC connection behaves like a TCP stream: either side may speak first, shutdown
//! gives the peer EOF, and data written before a drop is still delivered.

use crate::common;

use crate::common::trusted_quic;
use msg_transport::{Listener, Quic, QuicConn, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connected_pair(quic: &Quic) -> (QuicConn, QuicConn) {
    let mut listener = quic
        .bind(&"quic://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let (client, _) = quic.connect(&endpoint).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[tokio::test]
async fn server_may_speak_first() {
    // The client's stream-open byte makes the stream visible to the server at once,
    // so the accepting side can write before it has read anything.
    let (mut client, mut server) = connected_pair(&trusted_quic()).await;
    server.write_all(b"hello first").await.unwrap();
    server.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"hello first");
}

#[tokio::test]
async fn data_written_before_drop_is_delivered() {
    let (mut client, mut server) = connected_pair(&trusted_quic()).await;
    let sent = common::payload(1024 * 1024, 3);
    client.write_all(&sent).await.unwrap();
    // No shutdown, no flush: dropping must not discard what is in flight.
    drop(client);
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent);
}

#[tokio::test]
async fn shutdown_gives_eof_but_keeps_the_other_direction() {
    let (mut client, mut server) = connected_pair(&trusted_quic()).await;
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"request");
    server.write_all(b"reply").await.unwrap();
    drop(server);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, b"reply");
}
