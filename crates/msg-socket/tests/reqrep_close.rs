//! Closing or dropping a Req or Rep socket frees its ports, socket files and
//! inproc names; a request held by a dropped Rep fails with
//! `ConnectionLost` at once; a Req shared by many tasks is closed once they
//! are done with it (`request` borrows the socket, `close` takes it).

use crate::common;

use std::time::Duration;

use msg_socket::{RepSocket, ReqError, ReqSocket};

/// Binding `endpoints` again with fresh sockets works. After a drop the
/// listeners stop in the background, so this gives them a bounded number of
/// scheduler turns (no clock involved).
async fn rebind_all(endpoints: &[String]) {
    for endpoint in endpoints {
        let mut tries = 0;
        loop {
            let probe = RepSocket::new();
            match probe.bind(endpoint).await {
                Ok(_) => break,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 1_000, "{endpoint} still taken: {e}");
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[tokio::test]
async fn closing_a_req_or_rep_frees_its_port_socket_file_and_name() {
    let s = common::setup("ipc");
    let inproc = format!("inproc://reqrep-close-{}", std::process::id());
    let wanted = ["tcp://127.0.0.1:0".to_owned(), s.bind.clone(), inproc];

    // A Req that binds, with a Rep connected and served through it.
    let req = ReqSocket::new();
    let mut endpoints = Vec::new();
    for e in &wanted {
        endpoints.push(req.bind(e).await.unwrap().to_string());
    }
    let rep = RepSocket::new();
    rep.connect(&endpoints[0]).unwrap();
    tokio::spawn(rep.serve(4, |p, _| async move { p }));
    assert_eq!(req.request("x").await.unwrap(), "x");
    let report = req.close(Duration::from_millis(200)).await;
    assert!(report.is_complete(), "{report:?}");
    // close() returns after the listeners are gone: no retry needed.
    for e in &endpoints {
        let probe = ReqSocket::new();
        probe
            .bind(e)
            .await
            .unwrap_or_else(|err| panic!("{e} still taken after close: {err}"));
        probe.close(Duration::ZERO).await;
    }

    // The same for a Rep.
    let rep = RepSocket::new();
    let mut endpoints = Vec::new();
    for e in &wanted {
        endpoints.push(rep.bind(e).await.unwrap().to_string());
    }
    rep.close(Duration::from_millis(200)).await;
    for e in &endpoints {
        let probe = RepSocket::new();
        probe
            .bind(e)
            .await
            .unwrap_or_else(|err| panic!("{e} still taken after close: {err}"));
        probe.close(Duration::ZERO).await;
    }
}

#[tokio::test]
async fn dropping_a_req_or_rep_frees_its_endpoints() {
    let s = common::setup("ipc");
    let inproc = format!("inproc://reqrep-drop-{}", std::process::id());
    let wanted = ["tcp://127.0.0.1:0".to_owned(), s.bind.clone(), inproc];

    let req = ReqSocket::new();
    let mut endpoints = Vec::new();
    for e in &wanted {
        endpoints.push(req.bind(e).await.unwrap().to_string());
    }
    drop(req);
    rebind_all(&endpoints).await;

    // A Rep dropped with a request in hand: the requester learns at once
    // that its request is lost, and the endpoint is free.
    let mut rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let req = ReqSocket::new();
    req.connect(&endpoint).unwrap();
    let (result, ()) = tokio::join!(req.request_timeout("x", Duration::from_secs(30)), async {
        let held = rep.recv().await.unwrap();
        drop(rep);
        assert!(held.reply("too late").await.is_err());
    });
    assert!(
        matches!(result, Err(ReqError::ConnectionLost)),
        "{result:?}"
    );
    rebind_all(&[endpoint]).await;
}

#[tokio::test]
async fn a_req_shared_through_an_arc_closes_once_the_last_requester_is_done() {
    let rep = RepSocket::new();
    let endpoint = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    tokio::spawn(rep.serve(4, |p, _| async move { p }));
    let req = ReqSocket::new();
    let own = req.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    req.connect(&endpoint).unwrap();
    let req = std::sync::Arc::new(req);
    let tasks: Vec<_> = (0..4)
        .map(|k| {
            let req = req.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let payload = format!("{k}-{n}");
                    assert_eq!(req.request(payload.clone()).await.unwrap(), payload);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Every requester is done, so the socket is ours again to close.
    let req = std::sync::Arc::into_inner(req).expect("no request can still hold it");
    assert_eq!(req.stats().requests, 100);
    assert!(req.close(Duration::from_millis(100)).await.is_complete());
    let probe = ReqSocket::new();
    probe.bind(&own).await.unwrap();
}
