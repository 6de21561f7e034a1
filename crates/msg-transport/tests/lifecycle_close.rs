//! Closing a listener or a connection (rather than dropping it) returns only once
//! what it bound is free: QUIC's UDP ports, the client's own and the listener's, and
//! a TLS listener's TCP port. Dropping does the same in the background.

use crate::common::{self, Kind};

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use msg_transport::{AnyConn, Listener, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether a plain UDP socket can bind `addr` now.
fn udp_free(addr: SocketAddr) -> bool {
    UdpSocket::bind(addr).is_ok()
}

#[tokio::test]
async fn closing_quic_connections_and_listener_frees_both_udp_ports() {
    let setup = common::setup(Kind::Quic);
    let quic = &setup.transport;
    let mut listener = quic.bind(&setup.endpoint).await.unwrap();
    let endpoint = listener.local_endpoint().clone();
    let server_addr = endpoint.socket_addr().unwrap();
    let (mut client, _) = quic.connect(&endpoint).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut ping = [0u8; 4];
    server.read_exact(&mut ping).await.unwrap();

    // The client bound the unspecified address; the server sees it on loopback.
    let AnyConn::Quic(accepted) = &server else {
        panic!("not a quic connection");
    };
    let client_addr: SocketAddr = (Ipv4Addr::UNSPECIFIED, accepted.remote_address().port()).into();
    assert!(
        !udp_free(client_addr),
        "the client's port is taken while open"
    );
    assert!(
        !udp_free(server_addr),
        "the listener's port is taken while bound"
    );

    quic.close_conn(client).await;
    assert!(
        udp_free(client_addr),
        "close_conn returned with the client's port taken"
    );

    // The listener's socket closes once the connections accepted from it are gone.
    drop(server);
    listener.close().await;
    assert!(
        udp_free(server_addr),
        "close returned with the listener's port taken"
    );
}

#[tokio::test]
async fn data_written_before_close_is_delivered() {
    let setup = common::setup(Kind::Quic);
    let quic = &setup.transport;
    let mut listener = quic.bind(&setup.endpoint).await.unwrap();
    let endpoint = listener.local_endpoint().clone();
    let (mut client, _) = quic.connect(&endpoint).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let sent = common::payload(1024 * 1024, 5);
    client.write_all(&sent).await.unwrap();
    // No shutdown, no flush: closing waits for the peer to acknowledge it all.
    let mut got = Vec::new();
    let ((), read) = tokio::join!(quic.close_conn(client), server.read_to_end(&mut got));
    read.unwrap();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent);
}

#[tokio::test]
async fn closing_a_tls_listener_frees_its_tcp_port() {
    let setup = common::setup(Kind::Tls);
    let listener = setup.transport.bind(&setup.endpoint).await.unwrap();
    let addr = listener.local_endpoint().socket_addr().unwrap();
    listener.close().await;
    // The TCP listener lived in the accept task: close waited for it to go.
    std::net::TcpListener::bind(addr).expect("close returned with the TCP port taken");
}
