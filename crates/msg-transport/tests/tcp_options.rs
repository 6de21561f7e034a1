//! TCP connections get the options they are configured with, and listeners bound to
//! port 0 report their real port.

use crate::common;

use std::time::Duration;

use msg_transport::{Endpoint, Listener, Tcp, TcpOptions, Transport};
use socket2::SockRef;

#[tokio::test]
async fn port_zero_reports_the_real_port() {
    let listener = Tcp::new()
        .bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint();
    let port = endpoint.socket_addr().unwrap().port();
    assert_ne!(port, 0);
    assert_eq!(endpoint.to_string(), format!("tcp://127.0.0.1:{port}"));
}

#[tokio::test]
async fn nodelay_and_keepalive_are_set_on_both_sides() {
    let tcp = Tcp::new();
    let mut listener = tcp
        .bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let (client, peer) = tcp.connect(&endpoint).await.unwrap();
    let (server, accepted) = listener.accept().await.unwrap();
    assert_eq!(peer.socket_addr(), endpoint.socket_addr());
    assert_eq!(accepted.socket_addr(), Some(client.local_addr().unwrap()));
    for stream in [&client, &server] {
        assert!(stream.nodelay().unwrap());
        let sock = SockRef::from(stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }
}

#[tokio::test]
async fn keepalive_can_be_turned_off() {
    let mut options = TcpOptions::default();
    options.keepalive(None).nodelay(false);
    let tcp = Tcp::with_options(options);
    let mut listener = tcp
        .bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    let (client, _) = tcp.connect(&endpoint).await.unwrap();
    let (_server, _) = listener.accept().await.unwrap();
    assert!(!client.nodelay().unwrap());
    assert!(!SockRef::from(&client).keepalive().unwrap());
}

#[tokio::test]
async fn binding_a_bound_port_is_addr_in_use() {
    let tcp = Tcp::new();
    let listener = tcp
        .bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let error = tcp.bind(listener.local_endpoint()).await.unwrap_err();
    assert!(error.is_addr_in_use(), "{}", common::chain(&error));
}

#[tokio::test]
async fn wrong_scheme_for_a_single_transport_is_unsupported() {
    let endpoint: Endpoint = "inproc://x".parse().unwrap();
    let error = Tcp::new().connect(&endpoint).await.unwrap_err();
    assert!(error.to_string().contains("use AnyTransport"), "{error}");
}

#[tokio::test]
async fn connect_timeout_applies() {
    // 192.0.2.0/24 is TEST-NET-1: with only loopback networking the connect fails
    // or hangs; either way it must end within the timeout and not report success.
    let mut options = TcpOptions::default();
    options.connect_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let result = Tcp::with_options(options)
        .connect(&"tcp://192.0.2.1:9".parse().unwrap())
        .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
