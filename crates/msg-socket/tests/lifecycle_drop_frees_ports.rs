//! Dropping or closing a socket frees what it bound: QUIC's UDP port, and
//! the TCP ports and IPC socket files of Pub and Sub sockets (Req and Rep
//! are covered in `reqrep_close` and `lifecycle_close_and_drop`). Each
//! socket is in use, with a live peer, when it goes.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use crate::raw::{EchoRep, HANG};
use futures::StreamExt;
use msg_socket::transport::Endpoint;
use msg_socket::{PubSocket, RepSocket, ReqSocket, SocketOptions, SubSocket};

/// A Rep bound to QUIC on loopback, serving a Req that has made a request
/// through it; returns the Rep, its UDP address, and the Req.
async fn quic_pair() -> (RepSocket, SocketAddr, ReqSocket) {
    let (server_t, client_t) = common::secure_transports();
    let mut server = SocketOptions::new();
    server.transport(server_t);
    let mut client = SocketOptions::new();
    client.transport(client_t);
    let rep = RepSocket::with_options(server).unwrap();
    let endpoint = rep.bind("quic://127.0.0.1:0").await.unwrap();
    let addr = endpoint.socket_addr().unwrap();
    assert!(
        UdpSocket::bind(addr).is_err(),
        "the UDP port is not taken while bound"
    );
    let req = ReqSocket::with_options(client).unwrap();
    req.connect(&endpoint.to_string()).unwrap();
    assert!(req.wait_for_peers(1, HANG).await);
    (rep, addr, req)
}

/// Waits until a plain UDP socket can bind `addr`. QUIC gives a port back
/// only once its connections have drained (a few round trips after they
/// close, in quinn's endpoint task), so this polls, every millisecond, up
/// to [`HANG`]: it returns as soon as the port is free and fails only if it
/// never is.
async fn wait_until_udp_free(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + HANG;
    while let Err(e) = UdpSocket::bind(addr) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the UDP port {addr} was never freed: {e}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn dropping_a_quic_socket_frees_its_udp_port() {
    let (rep, addr, req) = quic_pair().await;
    let rep = EchoRep::spawn(rep);
    assert_eq!(req.request("over quic").await.unwrap(), "over quic");
    // Dropping the handle ends the serving task, which drops the socket.
    drop(rep);
    wait_until_udp_free(addr).await;
}

#[tokio::test]
async fn closing_a_quic_socket_frees_its_udp_port_before_it_returns() {
    let (rep, addr, _req) = quic_pair().await;
    rep.close(Duration::ZERO).await;
    UdpSocket::bind(addr).expect("close returned with the UDP port still taken");
}

/// Binding `endpoint` again with a fresh socket works. After a drop the
/// listeners stop in the background, so this gives them a bounded number of
/// scheduler turns (no clock involved).
async fn rebind(endpoint: &Endpoint) {
    for _ in 0..1_000 {
        if PubSocket::new().bind(&endpoint.to_string()).await.is_ok() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{endpoint} was never freed");
}

/// A TCP and an IPC endpoint to bind, and the IPC socket file.
fn endpoints() -> (tempfile::TempDir, [String; 2], PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sock");
    let ipc = format!("ipc://{}", path.display());
    (dir, ["tcp://127.0.0.1:0".to_owned(), ipc], path)
}

/// A publisher bound to TCP and IPC with a subscriber on each, having
/// delivered one message to both.
struct Bound<S, P> {
    socket: S,
    endpoints: Vec<Endpoint>,
    ipc_file: PathBuf,
    /// The connected peers, kept alive while the socket goes.
    _peers: Vec<P>,
    _dir: tempfile::TempDir,
}

async fn bound_publisher() -> Bound<PubSocket, SubSocket> {
    let (dir, wanted, path) = endpoints();
    let publisher = PubSocket::new();
    let mut bound = Vec::new();
    for e in &wanted {
        bound.push(publisher.bind(e).await.unwrap());
    }
    assert!(path.exists());
    let mut subs = Vec::new();
    for e in &bound {
        let sub = SubSocket::new();
        sub.subscribe("").await;
        sub.connect(&e.to_string()).unwrap();
        subs.push(sub);
    }
    assert!(publisher.wait_for_subscribers(2, HANG).await);
    assert_eq!(publisher.publish("t", "hello").unwrap(), 2);
    for sub in &mut subs {
        let msg = tokio::time::timeout(HANG, sub.next()).await.unwrap();
        assert_eq!(msg.unwrap().payload(), "hello");
    }
    Bound {
        socket: publisher,
        endpoints: bound,
        ipc_file: path,
        _peers: subs,
        _dir: dir,
    }
}

/// A subscriber bound to TCP and IPC with a publisher connected to each,
/// having received one message from both.
async fn bound_subscriber() -> Bound<SubSocket, PubSocket> {
    let (dir, wanted, path) = endpoints();
    let mut sub = SubSocket::new();
    sub.subscribe("").await;
    let mut bound = Vec::new();
    for e in &wanted {
        bound.push(sub.bind(e).await.unwrap());
    }
    assert!(path.exists());
    let mut publishers = Vec::new();
    for e in &bound {
        let publisher = PubSocket::new();
        publisher.connect(&e.to_string()).unwrap();
        assert!(publisher.wait_for_subscribers(1, HANG).await);
        assert_eq!(publisher.publish("t", "hello").unwrap(), 1);
        let msg = tokio::time::timeout(HANG, sub.next()).await.unwrap();
        assert_eq!(msg.unwrap().payload(), "hello");
        publishers.push(publisher);
    }
    Bound {
        socket: sub,
        endpoints: bound,
        ipc_file: path,
        _peers: publishers,
        _dir: dir,
    }
}

/// Waits, for a bounded number of scheduler turns, until `path` is gone.
async fn wait_gone(path: &std::path::Path) {
    for _ in 0..1_000 {
        if !path.exists() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the IPC socket file {} was left behind", path.display());
}

#[tokio::test]
async fn dropping_a_pub_socket_frees_its_tcp_port_and_ipc_socket_file() {
    let b = bound_publisher().await;
    drop(b.socket);
    wait_gone(&b.ipc_file).await;
    for e in &b.endpoints {
        rebind(e).await;
    }
}

#[tokio::test]
async fn dropping_a_sub_socket_frees_its_tcp_port_and_ipc_socket_file() {
    let b = bound_subscriber().await;
    drop(b.socket);
    wait_gone(&b.ipc_file).await;
    for e in &b.endpoints {
        rebind(e).await;
    }
}

#[tokio::test]
async fn closing_a_pub_or_sub_socket_frees_its_endpoints_before_it_returns() {
    let b = bound_publisher().await;
    assert!(b.socket.close(Duration::ZERO).await.is_complete());
    assert!(
        !b.ipc_file.exists(),
        "close left the IPC socket file behind"
    );
    for e in &b.endpoints {
        let probe = PubSocket::new();
        probe.bind(&e.to_string()).await.expect("close freed it");
        probe.close(Duration::ZERO).await;
    }

    let b = bound_subscriber().await;
    assert!(b.socket.close(Duration::ZERO).await.is_complete());
    assert!(
        !b.ipc_file.exists(),
        "close left the IPC socket file behind"
    );
    for e in &b.endpoints {
        let probe = SubSocket::new();
        probe.bind(&e.to_string()).await.expect("close freed it");
        probe.close(Duration::ZERO).await;
    }
}
