//! Every pattern works over every transport.

use crate::common;

use std::time::Duration;

use futures::StreamExt;
use msg_socket::{PubSocket, RepSocket, ReqSocket, SubSocket};

#[tokio::test]
async fn reqrep_and_pubsub_work_over_every_transport() {
    for s in common::setups() {
        let rep = RepSocket::with_options(s.server.clone()).unwrap();
        let bound = rep.bind(&s.bind).await.unwrap();
        tokio::spawn(rep.serve(4, |p, _| async move { p }));
        let req = ReqSocket::with_options(s.client.clone()).unwrap();
        req.connect(&bound.to_string()).unwrap();
        let reply = req
            .request("ping")
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(reply, "ping", "{}", s.name);

        let publisher = PubSocket::with_options(s.server.clone()).unwrap();
        // Names and paths are taken by the Rep socket; ports are not (0).
        let bind = if s.name == "inproc" || s.name == "ipc" {
            format!("{}-pub", s.bind)
        } else {
            s.bind.clone()
        };
        let bound = publisher.bind(&bind).await.unwrap();
        let mut sub = SubSocket::with_options(s.client.clone()).unwrap();
        sub.subscribe("t").await;
        sub.connect(&bound.to_string()).unwrap();
        assert!(
            publisher
                .wait_for_subscribers(1, Duration::from_secs(10))
                .await,
            "{}",
            s.name
        );
        publisher.publish("topic", "hello").unwrap();
        let msg = sub.next().await.unwrap();
        assert_eq!(msg.payload(), "hello", "{}", s.name);
        assert_eq!(msg.seq(), 1);
    }
}

#[tokio::test]
async fn a_refused_tls_connection_reports_its_cause() {
    use futures::StreamExt as _;
    use msg_socket::SocketEvent;
    use msg_socket::transport::{AnyTransport, Tls, TlsClientConfig, TlsOptions, dev};

    let s = common::setup("tls");
    let rep = RepSocket::with_options(s.server.clone()).unwrap();
    let bound = rep.bind(&s.bind).await.unwrap();

    // A client that trusts some other certificate, not the server's.
    let stranger = dev::self_signed(["localhost"]).unwrap();
    let mut roots = TlsClientConfig::new();
    roots.add_root(stranger.certificate());
    let mut tls = TlsOptions::new();
    tls.client(roots);
    let mut client = s.client.clone();
    client.transport(AnyTransport::new().with_tls(Tls::new(&tls).unwrap()));
    let req = ReqSocket::with_options(client).unwrap();
    let mut events = req.events();
    req.connect(&bound.to_string()).unwrap();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(SocketEvent::ConnectFailed { error, .. })) => break error,
            Ok(Some(_)) => {}
            other => panic!("no ConnectFailed event: {other:?}"),
        }
    };
    // The outer message alone says only that the handshake failed; the
    // cause comes from the error's sources.
    assert!(
        error.to_ascii_lowercase().contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
}
