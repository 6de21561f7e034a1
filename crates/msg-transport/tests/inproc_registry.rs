//! Inproc names are registered while a listener lives, and only then.

use crate::common::{chain, echo_sizes, spawn_echo_server, unique};
use msg_transport::{Endpoint, Inproc, Listener, PeerAddr, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn binding_a_taken_name_is_addr_in_use() {
    let endpoint = Endpoint::inproc(unique("taken"));
    let _first = Inproc.bind(&endpoint).await.unwrap();
    let error = Inproc.bind(&endpoint).await.unwrap_err();
    assert!(error.is_addr_in_use(), "{}", chain(&error));
    assert_eq!(
        error.to_string(),
        format!("address already in use: {endpoint}")
    );
}

#[tokio::test]
async fn dropping_the_listener_frees_the_name() {
    let endpoint = Endpoint::inproc(unique("freed"));
    let listener = Inproc.bind(&endpoint).await.unwrap();
    drop(listener);
    assert!(Inproc.connect(&endpoint).await.unwrap_err().is_refused());
    let again = Inproc.bind(&endpoint).await.unwrap();
    spawn_echo_server(again);
    let (conn, _) = Inproc.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[8], 1).await;
}

#[tokio::test]
async fn connections_get_unique_ids_on_both_sides() {
    let endpoint = Endpoint::inproc(unique("ids"));
    let mut listener = Inproc.bind(&endpoint).await.unwrap();
    let (_a, client_a) = Inproc.connect(&endpoint).await.unwrap();
    let (_b, client_b) = Inproc.connect(&endpoint).await.unwrap();
    let (_sa, server_a) = listener.accept().await.unwrap();
    let (_sb, server_b) = listener.accept().await.unwrap();
    // Each end knows the same id for its connection, and the two differ.
    assert_eq!(client_a, server_a);
    assert_eq!(client_b, server_b);
    assert_ne!(server_a, server_b);
    match &server_a {
        PeerAddr::Inproc { name, .. } => assert_eq!(Endpoint::inproc(name.clone()), endpoint),
        other => panic!("not an inproc peer: {other:?}"),
    }
}

#[tokio::test]
async fn dropping_one_end_gives_the_other_eof() {
    let endpoint = Endpoint::inproc(unique("eof"));
    let mut listener = Inproc.bind(&endpoint).await.unwrap();
    let (mut client, _) = Inproc.connect(&endpoint).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"last words").await.unwrap();
    drop(client);
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");
}

#[tokio::test]
async fn connections_queued_for_a_dropped_listener_are_closed() {
    let endpoint = Endpoint::inproc(unique("queued"));
    let listener = Inproc.bind(&endpoint).await.unwrap();
    let (mut client, _) = Inproc.connect(&endpoint).await.unwrap();
    drop(listener);
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn listener_reports_its_endpoint() {
    let endpoint: Endpoint = format!("inproc://{}", unique("named")).parse().unwrap();
    let listener = Inproc.bind(&endpoint).await.unwrap();
    assert_eq!(listener.local_endpoint(), &endpoint);
}
