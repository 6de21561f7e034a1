//! Identities bound to credentials: the verified client certificate reaches
//! the authenticator and `PeerInfo` over TLS and QUIC, an identity can be
//! required to be a name in it, and a repeated identity of another
//! principal is refused rather than taking over the route. Real sockets on
//! loopback, certificates from a development CA.

use std::time::Duration;

use bytes::Bytes;
use msg_socket::transport::PeerCertificates;
use msg_socket::{
    AuthRequest, DealerSocket, PeerEvent, PeerSocket, RouterSocket, SocketEvent, SocketEvents,
    SocketOptions,
};
use msg_testkit::{MutualTls, next_matching};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn options() -> SocketOptions {
    let mut o = SocketOptions::new();
    o.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100));
    o
}

/// The next `Up` event of `socket`, with its peer's certificates.
async fn next_up(socket: &PeerSocket) -> (Bytes, Option<std::sync::Arc<PeerCertificates>>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match socket.recv().await.expect("socket open") {
                PeerEvent::Up(identity, info) => return (identity, info.certificates),
                _ => continue,
            }
        }
    })
    .await
    .expect("a peer came up")
}

/// The identity and reason of the next `IdentityRefused` event.
async fn identity_refused(events: &mut SocketEvents) -> (Bytes, String) {
    next_matching(events, |e| match e {
        SocketEvent::IdentityRefused {
            identity, reason, ..
        } => Some((identity, reason)),
        _ => None,
    })
    .await
}

async fn certificates_reach_the_authenticator_and_peer_info(scheme: &str) {
    let pki = MutualTls::new();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut server_opts = options();
    server_opts
        .identity("server")
        .transport(pki.server())
        .authenticator(move |req: AuthRequest| {
            let _ = seen_tx.send(req.certificates);
            async { Ok(()) }
        });
    let server = PeerSocket::with_options(server_opts).unwrap();
    let endpoint = server
        .bind(&format!("{scheme}://127.0.0.1:0"))
        .await
        .unwrap();
    let mut client_opts = options();
    client_opts.identity("alice").transport(pki.client("alice"));
    let client = PeerSocket::with_options(client_opts).unwrap();
    client.connect(&endpoint.to_string()).unwrap();

    let at_auth = seen
        .recv()
        .await
        .unwrap()
        .expect("the authenticator saw it");
    assert_eq!(
        at_auth.names().common_names().collect::<Vec<_>>(),
        ["alice"]
    );
    let (identity, certs) = next_up(&server).await;
    assert_eq!(identity, "alice");
    let certs = certs.expect("PeerInfo carries the client certificate");
    assert!(certs.names().contains(b"alice"));
    assert_eq!(certs.end_entity(), at_auth.end_entity());
    assert_eq!(certs.chain().len(), 2, "leaf and ca");
    // The client sees the server's verified certificate.
    let (identity, certs) = next_up(&client).await;
    assert_eq!(identity, "server");
    let certs = certs.expect("the server's certificate");
    assert!(certs.names().contains(b"127.0.0.1"));
    assert!(certs.names().contains(b"localhost"));
}

#[tokio::test]
async fn certificates_reach_the_authenticator_and_peer_info_over_tls() {
    certificates_reach_the_authenticator_and_peer_info("tls").await;
}

#[tokio::test]
async fn certificates_reach_the_authenticator_and_peer_info_over_quic() {
    certificates_reach_the_authenticator_and_peer_info("quic").await;
}

#[tokio::test]
async fn no_certificates_over_tcp() {
    let server = PeerSocket::with_options(options()).unwrap();
    let endpoint = server.bind("tcp://127.0.0.1:0").await.unwrap();
    let client = PeerSocket::with_options(options()).unwrap();
    client.connect(&endpoint.to_string()).unwrap();
    assert_eq!(next_up(&server).await.1, None);
    assert_eq!(next_up(&client).await.1, None);
}

/// A DEALER with a valid certificate for another name cannot take over the
/// route of a connected one; the router keeps sending to the holder.
#[tokio::test]
async fn router_refuses_a_repeated_identity_of_another_principal() {
    let pki = MutualTls::new();
    let mut router_opts = options();
    router_opts.transport(pki.server());
    let mut router = RouterSocket::with_options(router_opts).unwrap();
    let mut router_events = router.events();
    let endpoint = router.bind("tls://127.0.0.1:0").await.unwrap().to_string();

    let mut holder_opts = options();
    holder_opts
        .identity("worker")
        .transport(pki.client("worker"));
    let mut holder = DealerSocket::with_options(holder_opts).unwrap();
    let mut holder_events = holder.events();
    holder.connect(&endpoint).unwrap();
    assert!(router.wait_for_peers(1, WAIT).await);

    let mut forged_opts = options();
    forged_opts
        .identity("worker")
        .transport(pki.client("mallory"));
    let forged = DealerSocket::with_options(forged_opts).unwrap();
    let mut forged_events = forged.events();
    forged.connect(&endpoint).unwrap();
    let (identity, reason) = identity_refused(&mut forged_events).await;
    assert_eq!(identity, "worker");
    assert!(reason.contains("another principal"), "{reason}");
    next_matching(&mut router_events, |e| {
        matches!(e, SocketEvent::IdentityRefused { .. }).then_some(())
    })
    .await;
    assert_eq!(router.stats().identity_refusals, 1);
    assert!(forged.stats().identity_refusals >= 1);

    forged.send("forged").await.unwrap();
    holder.send("real").await.unwrap();
    let (route, message) = tokio::time::timeout(WAIT, router.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (route.identity(), message.first()),
        (&Bytes::from("worker"), &Bytes::from("real"))
    );
    router.send_to("worker", "for the holder").await.unwrap();
    let got = tokio::time::timeout(WAIT, holder.recv()).await.unwrap();
    assert_eq!(got.unwrap(), "for the holder");
    while let Some(Some(event)) =
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut holder_events))
    {
        assert!(
            !matches!(event, SocketEvent::Disconnected { .. }),
            "the holder lost its connection: {event:?}"
        );
    }
}

/// A client bound to certificates checks the server's identity against the
/// server's certificate.
#[tokio::test]
async fn a_bound_client_refuses_a_server_whose_identity_its_certificate_lacks() {
    let pki = MutualTls::new();
    let mut server_opts = options();
    server_opts
        .identity("not-localhost")
        .transport(pki.server());
    let server = PeerSocket::with_options(server_opts).unwrap();
    let endpoint = server.bind("tls://127.0.0.1:0").await.unwrap();
    let mut client_opts = options();
    client_opts
        .transport(pki.client("alice"))
        .bind_identity_to_certificate(true);
    let client = PeerSocket::with_options(client_opts).unwrap();
    let mut events = client.events();
    client.connect(&endpoint.to_string()).unwrap();
    let error = next_matching(&mut events, |e| match e {
        SocketEvent::HandshakeFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    assert!(
        error.contains("\"not-localhost\" is not a name in the server certificate"),
        "{error}"
    );
}

/// Over TCP there is no certificate to bind an identity to: a server that
/// requires one turns everyone away, saying why.
#[tokio::test]
async fn a_bound_server_refuses_everyone_over_tcp() {
    let mut server_opts = options();
    server_opts.bind_identity_to_certificate(true);
    let server = PeerSocket::with_options(server_opts).unwrap();
    let endpoint = server.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut client_opts = options();
    client_opts.identity("alice");
    let client = PeerSocket::with_options(client_opts).unwrap();
    let mut events = client.events();
    client.connect(&endpoint.to_string()).unwrap();
    let reason = next_matching(&mut events, |e| match e {
        SocketEvent::AuthRejected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(
        reason.contains("a verified client certificate, and there is none"),
        "{reason}"
    );
    assert_eq!(server.stats().auth_rejections, 1);
}

/// A peer that reconnects with a certificate for the same name (a restart,
/// a renewed certificate) is the same principal: it replaces its old
/// connection at once, without waiting for the heartbeat timeout.
#[tokio::test]
async fn the_same_certificate_name_replaces_a_connected_identity() {
    let pki = MutualTls::new();
    let mut server_opts = options();
    server_opts.transport(pki.server());
    let server = PeerSocket::with_options(server_opts).unwrap();
    let endpoint = server.bind("quic://127.0.0.1:0").await.unwrap().to_string();
    let mut alice_opts = options();
    alice_opts.identity("alice").transport(pki.client("alice"));
    let old = PeerSocket::with_options(alice_opts.clone()).unwrap();
    let mut old_events = old.events();
    old.connect(&endpoint).unwrap();
    assert_eq!(next_up(&server).await.0, "alice");

    // A new certificate for the same name.
    alice_opts.transport(pki.client("alice"));
    let new = PeerSocket::with_options(alice_opts).unwrap();
    new.connect(&endpoint).unwrap();
    assert_eq!(next_up(&server).await.0, "alice", "the newer one took over");
    let reason = next_matching(&mut old_events, |e| match e {
        SocketEvent::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(
        reason.contains("replaced by a newer connection"),
        "{reason}"
    );
    assert_eq!(server.stats().identity_refusals, 0);
}

/// A client connected to a server with a certificate refuses a second
/// server announcing the same identity without one: another principal.
/// Nothing is admitted on the client's side, so the refusal comes once the
/// connection is up, and is reported the same way.
#[tokio::test]
async fn a_client_refuses_a_second_server_of_another_principal_with_the_same_identity() {
    let pki = MutualTls::new();
    let mut certified_opts = options();
    certified_opts.identity("srv").transport(pki.server());
    let certified = PeerSocket::with_options(certified_opts).unwrap();
    let certified_at = certified.bind("tls://127.0.0.1:0").await.unwrap();
    let mut impostor_opts = options();
    impostor_opts.identity("srv");
    let impostor = PeerSocket::with_options(impostor_opts).unwrap();
    let mut impostor_events = impostor.events();
    let impostor_at = impostor.bind("tcp://127.0.0.1:0").await.unwrap();

    let mut client_opts = options();
    client_opts.transport(pki.client("alice"));
    let client = PeerSocket::with_options(client_opts).unwrap();
    let mut events = client.events();
    client.connect(&certified_at.to_string()).unwrap();
    let (identity, certs) = next_up(&client).await;
    assert_eq!(identity, "srv");
    assert!(certs.is_some());
    client.connect(&impostor_at.to_string()).unwrap();
    let (identity, reason) = identity_refused(&mut events).await;
    assert_eq!(identity, "srv");
    assert!(reason.contains("another principal"), "{reason}");
    let closed = next_matching(&mut impostor_events, |e| match e {
        SocketEvent::Disconnected { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(closed.contains("identity in use"), "{closed}");
    assert_eq!(client.stats().identity_refusals, 1);
    // The certified server keeps the route: a frame reaches it.
    client
        .send(
            b"srv",
            msg_socket::wire::Frame::Data {
                seq: 1,
                payload: Bytes::from_static(b"to the certified one"),
            },
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let PeerEvent::Frame(_, frame) = certified.recv().await.unwrap() {
                return frame;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.payload().unwrap(), "to the certified one");
}
