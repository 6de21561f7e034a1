//! IPC listeners manage their socket files carefully, and every IPC connection is a
//! peer of its own.

use crate::common;

use std::os::unix::fs::FileTypeExt;

use crate::common::{chain, echo_conn, echo_sizes};
use msg_transport::{Endpoint, Ipc, Listener, PeerAddr, Transport, TransportError};

fn is_socket(path: &std::path::Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

#[tokio::test]
async fn two_clients_are_distinct_peers_with_their_own_echoes() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::ipc(dir.path().join("peers.sock"));
    let mut listener = Ipc.bind(&endpoint).await.unwrap();

    let (client_a, peer_a) = Ipc.connect(&endpoint).await.unwrap();
    let (server_a, accepted_a) = listener.accept().await.unwrap();
    let (client_b, peer_b) = Ipc.connect(&endpoint).await.unwrap();
    let (server_b, accepted_b) = listener.accept().await.unwrap();

    // Both sides get ids, all four differ, and the server's pair tells A from B.
    let ids = [&peer_a, &peer_b, &accepted_a, &accepted_b].map(|p| p.conn_id().unwrap());
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "{ids:?}");
    assert_ne!(accepted_a, accepted_b);
    match &accepted_a {
        PeerAddr::Ipc { path, .. } => assert_eq!(path, &dir.path().join("peers.sock")),
        other => panic!("not an ipc peer: {other:?}"),
    }
    assert!(accepted_a.to_string().starts_with("ipc://"));
    assert!(accepted_a.to_string().contains('#'));

    tokio::spawn(echo_conn(server_a));
    tokio::spawn(echo_conn(server_b));
    // Different seeds: an echo crossing over to the other client would not match.
    let a = tokio::spawn(echo_sizes(client_a, &[10, 100_000, 7], 1));
    let b = tokio::spawn(echo_sizes(client_b, &[20, 50_000, 9], 2));
    a.await.unwrap();
    b.await.unwrap();
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    // A process that bound and died leaves its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path));

    let endpoint = Endpoint::ipc(&path);
    let listener = Ipc.bind(&endpoint).await.unwrap();
    common::spawn_echo_server(listener);
    let (conn, _) = Ipc.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[5], 3).await;
}

#[tokio::test]
async fn regular_file_at_path_is_kept_and_bind_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"do not delete").unwrap();

    let error = Ipc.bind(&Endpoint::ipc(&path)).await.unwrap_err();
    assert!(
        matches!(error, TransportError::NotASocket { .. }),
        "{}",
        chain(&error)
    );
    assert!(error.to_string().contains("is not a socket"), "{error}");
    assert!(error.to_string().contains("precious.txt"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"do not delete");
}

#[tokio::test]
async fn directory_at_path_is_kept_and_bind_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a-dir");
    std::fs::create_dir(&path).unwrap();
    let error = Ipc.bind(&Endpoint::ipc(&path)).await.unwrap_err();
    assert!(
        matches!(error, TransportError::NotASocket { .. }),
        "{}",
        chain(&error)
    );
    assert!(path.is_dir());
}

#[tokio::test]
async fn socket_file_is_removed_when_listener_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.sock");
    let listener = Ipc.bind(&Endpoint::ipc(&path)).await.unwrap();
    assert!(is_socket(&path));
    drop(listener);
    assert!(!path.exists());
}

#[tokio::test]
async fn dropping_old_listener_keeps_a_newer_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reused.sock");
    let endpoint = Endpoint::ipc(&path);
    let old = Ipc.bind(&endpoint).await.unwrap();
    // Someone removes the file and a new listener takes the path.
    std::fs::remove_file(&path).unwrap();
    let new = Ipc.bind(&endpoint).await.unwrap();
    drop(old);
    assert!(
        is_socket(&path),
        "the old listener deleted the new one's socket"
    );
    common::spawn_echo_server(new);
    let (conn, _) = Ipc.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[5], 4).await;
}

#[tokio::test]
async fn binding_a_live_socket_path_is_addr_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::ipc(dir.path().join("live.sock"));
    let listener = Ipc.bind(&endpoint).await.unwrap();
    common::spawn_echo_server(listener);

    let error = Ipc.bind(&endpoint).await.unwrap_err();
    assert!(error.is_addr_in_use(), "{}", chain(&error));
    assert!(
        error.to_string().contains("address already in use: ipc://"),
        "{error}"
    );

    // The live listener is unharmed.
    let (conn, _) = Ipc.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[5], 5).await;
}

#[tokio::test]
async fn relative_path_binds_in_working_directory() {
    // Parsed and displayed as given; bound relative to the current directory.
    let name = common::unique("relative-msg-transport-test") + ".sock";
    let endpoint: Endpoint = format!("ipc://{name}").parse().unwrap();
    assert_eq!(endpoint.to_string(), format!("ipc://{name}"));
    let listener = Ipc.bind(&endpoint).await.unwrap();
    assert!(is_socket(std::path::Path::new(&name)));
    assert_eq!(listener.local_endpoint(), &endpoint);
    drop(listener);
    assert!(!std::path::Path::new(&name).exists());
}
