//! A Rep serves many clients, each its own peer (IPC clients included), and
//! every reply goes back on the connection its request came from.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use msg_socket::transport::PeerAddr;
use msg_socket::{PeerInfo, RepSocket, ReqSocket, SocketOptions};

const PER_CLIENT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_is_its_own_peer_and_gets_its_own_answers() {
    let s = common::setup("ipc");
    let rep = RepSocket::with_options(s.server.clone()).unwrap();
    let ipc = rep.bind(&s.bind).await.unwrap();
    let tcp = rep.bind("tcp://127.0.0.1:0").await.unwrap();

    // The Rep notes which peer sent each payload, and answers with the
    // payload and its view of the peer's connection id.
    let seen: Arc<Mutex<HashMap<String, PeerInfo>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(rep.serve(16, move |payload, peer| {
        let log = log.clone();
        async move {
            let payload = String::from_utf8(payload.to_vec()).unwrap();
            let answer = format!("{payload}@{}", peer.conn_id);
            log.lock().unwrap().insert(payload, peer);
            answer
        }
    }));

    // Two clients over the same IPC path, two over TCP, each with its own
    // identity.
    let mut clients = Vec::new();
    for (k, endpoint) in [&ipc, &ipc, &tcp, &tcp].into_iter().enumerate() {
        let mut o = SocketOptions::new();
        common::quick(&mut o).identity(format!("client-{k}"));
        let req = ReqSocket::with_options(o).unwrap();
        req.connect(&endpoint.to_string()).unwrap();
        clients.push(req);
    }

    // All of them at once, interleaved.
    let mut in_flight = FuturesUnordered::new();
    for (k, req) in clients.iter().enumerate() {
        for n in 0..PER_CLIENT {
            in_flight.push(async move {
                let payload = format!("c{k}-{n}");
                let reply = req.request(payload.clone()).await.unwrap();
                (k, payload, String::from_utf8(reply.to_vec()).unwrap())
            });
        }
    }
    let mut conn_of_client: HashMap<usize, HashSet<String>> = HashMap::new();
    while let Some((k, payload, reply)) = in_flight.next().await {
        let (echoed, conn) = reply.split_once('@').unwrap();
        assert_eq!(echoed, payload, "client {k} got someone else's answer");
        conn_of_client.entry(k).or_default().insert(conn.to_owned());
    }

    // Each client was one connection, and no two clients shared one.
    let mut all_conns = HashSet::new();
    for k in 0..clients.len() {
        let conns = &conn_of_client[&k];
        assert_eq!(conns.len(), 1, "client {k} seen on {conns:?}");
        assert!(all_conns.insert(conns.iter().next().unwrap().clone()));
    }

    // What the Rep saw of each peer: its identity, and an address that tells
    // the two IPC clients apart.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), clients.len() * PER_CLIENT);
    let mut addrs = HashSet::new();
    for (k, req) in clients.iter().enumerate() {
        let peer = &seen[&format!("c{k}-0")];
        assert_eq!(&peer.identity, req.identity());
        assert_eq!(peer.socket_type, msg_socket::wire::SocketType::Req);
        match (&peer.addr, k) {
            (PeerAddr::Ipc { .. }, 0 | 1) | (PeerAddr::Tcp(_), 2 | 3) => {}
            (addr, k) => panic!("client {k} seen at {addr}"),
        }
        assert!(
            addrs.insert(peer.addr.clone()),
            "shared address {}",
            peer.addr
        );
        for n in 0..PER_CLIENT {
            assert_eq!(&seen[&format!("c{k}-{n}")], peer, "same peer throughout");
        }
    }
}

#[tokio::test]
async fn reply_goes_back_on_the_connection_it_came_from_even_out_of_order() {
    // Two clients each send one request; the Rep answers the second client
    // first, then the first.
    let s = common::setup("ipc");
    let mut rep = RepSocket::with_options(s.server.clone()).unwrap();
    let bound = rep.bind(&s.bind).await.unwrap();
    let a = ReqSocket::new();
    let b = ReqSocket::new();
    a.connect(&bound.to_string()).unwrap();
    b.connect(&bound.to_string()).unwrap();

    let server = async {
        let first = rep.recv().await.unwrap();
        let second = rep.recv().await.unwrap();
        assert_ne!(first.peer().conn_id, second.peer().conn_id);
        for r in [second, first] {
            let answer = [b"for ".as_slice(), r.payload()].concat();
            r.reply(answer).await.unwrap();
        }
    };
    let (ra, rb, ()) = tokio::join!(
        a.request_timeout("a", Duration::from_secs(10)),
        b.request_timeout("b", Duration::from_secs(10)),
        server
    );
    assert_eq!(ra.unwrap(), "for a");
    assert_eq!(rb.unwrap(), "for b");
}
