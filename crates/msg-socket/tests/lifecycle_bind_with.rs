//! `bind_with`: a socket binds with a transport value of the caller's (its
//! configuration, its wrapper) instead of the one from its options, and may
//! do so beside endpoints bound by string.

use std::time::Duration;

use crate::raw::HANG;
use bytes::Bytes;
use futures::StreamExt;
use msg_socket::transport::{
    AnyTransport, Endpoint, FaultOptions, Faulty, Scheme, Tcp, Tls, TlsClientConfig, TlsOptions,
    TransportError, dev,
};
use msg_socket::{PubSocket, RepSocket, ReqSocket, SocketError, SocketOptions, SubSocket};

#[tokio::test]
async fn bind_with_serves_over_a_transport_the_options_do_not_have() {
    let cert = dev::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let mut server = TlsOptions::new();
    server.server(cert.server_config());
    let tls = Tls::new(&server).unwrap();

    // The options know no TLS server configuration: binding by string fails.
    let rep = RepSocket::new();
    let refused = rep.bind("tls://127.0.0.1:0").await.unwrap_err();
    assert!(
        matches!(
            refused,
            SocketError::Transport(TransportError::MissingConfig {
                scheme: Scheme::Tls,
                ..
            })
        ),
        "{refused:?}"
    );
    // With the transport value it works, on a real port.
    let wanted: Endpoint = "tls://127.0.0.1:0".parse().unwrap();
    let bound = rep.bind_with(tls, &wanted).await.unwrap();
    assert_eq!(bound.scheme(), Scheme::Tls);
    assert_ne!(bound.socket_addr().unwrap().port(), 0);
    tokio::spawn(rep.serve(4, |payload, _| async move { payload }));

    let mut roots = TlsClientConfig::new();
    roots.add_root(cert.certificate());
    let mut client = TlsOptions::new();
    client.client(roots);
    let mut opts = SocketOptions::new();
    opts.transport(AnyTransport::new().with_tls(Tls::new(&client).unwrap()));
    let req = ReqSocket::with_options(opts).unwrap();
    req.connect(&bound.to_string()).unwrap();
    let reply = tokio::time::timeout(HANG, req.request("over tls"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, "over tls");
}

#[tokio::test]
async fn bind_with_a_wrapped_transport_carries_that_endpoints_connections() {
    // A publisher bound twice: by string, and with a `Faulty` TCP transport
    // (no faults) that records every connection it accepts.
    let faulty = Faulty::new(Tcp::new(), FaultOptions::new());
    let publisher = PubSocket::new();
    let plain = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
    let wrapped = publisher
        .bind_with(faulty.clone(), &"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(plain, wrapped);

    let mut subs = Vec::new();
    for endpoint in [&plain, &wrapped] {
        let sub = SubSocket::new();
        sub.subscribe("t").await;
        sub.connect(&endpoint.to_string()).unwrap();
        subs.push(sub);
    }
    assert!(publisher.wait_for_subscribers(2, HANG).await);
    // Only the connection to the wrapped endpoint went through it.
    let handles = faulty.handles();
    assert_eq!(handles.len(), 1);
    let before = handles[0].bytes_written();

    let payload = Bytes::from(vec![b'x'; 10_000]);
    assert_eq!(publisher.publish("t", payload.clone()).unwrap(), 2);
    for sub in &mut subs {
        let msg = tokio::time::timeout(HANG, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.payload(), &payload);
    }
    assert!(
        handles[0].bytes_written() - before >= payload.len() as u64,
        "the publication did not go through the wrapped transport"
    );
    assert_eq!(faulty.handles().len(), 1);
    let report = publisher.close(Duration::ZERO).await;
    assert!(report.is_complete());
}
