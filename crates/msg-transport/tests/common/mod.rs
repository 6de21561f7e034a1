//! Helpers shared by the integration tests: one setup per transport, an echo server
//! speaking msg-wire frames, and a client that checks the echoes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use msg_transport::{
    AnyListener, AnyTransport, Conn, Endpoint, Listener, Quic, QuicOptions, Tls, TlsClientConfig,
    TlsOptions, Transport, dev,
};
use msg_wire::{Frame, FrameCodec};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// The transports under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Ipc,
    Quic,
    Tls,
    Inproc,
}

/// A transport ready to bind and connect, and the endpoint to bind.
pub(crate) struct Setup {
    pub(crate) transport: AnyTransport,
    pub(crate) endpoint: Endpoint,
    /// Keeps the IPC socket's directory alive.
    pub(crate) _dir: Option<tempfile::TempDir>,
}

/// A process-unique name for inproc endpoints and files.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// TLS options with a fresh self-signed certificate that the client trusts.
pub(crate) fn trusted_tls() -> Tls {
    let cert = dev::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let mut client = TlsClientConfig::new();
    client.add_root(cert.certificate());
    let mut options = TlsOptions::new();
    options.server(cert.server_config()).client(client);
    Tls::new(&options).unwrap()
}

/// QUIC options with a fresh self-signed certificate that the client trusts.
pub(crate) fn trusted_quic() -> Quic {
    let cert = dev::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let mut client = TlsClientConfig::new();
    client.add_root(cert.certificate());
    let mut options = QuicOptions::new();
    options.server(cert.server_config()).client(client);
    Quic::new(&options).unwrap()
}

pub(crate) fn setup(kind: Kind) -> Setup {
    let transport = AnyTransport::new()
        .with_tls(trusted_tls())
        .with_quic(trusted_quic());
    let (endpoint, dir) = match kind {
        Kind::Tcp => ("tcp://127.0.0.1:0".parse().unwrap(), None),
        Kind::Tls => ("tls://127.0.0.1:0".parse().unwrap(), None),
        Kind::Quic => ("quic://127.0.0.1:0".parse().unwrap(), None),
        Kind::Inproc => (Endpoint::inproc(unique("test")), None),
        Kind::Ipc => {
            let dir = tempfile::tempdir().unwrap();
            (Endpoint::ipc(dir.path().join("echo.sock")), Some(dir))
        }
    };
    Setup {
        transport,
        endpoint,
        _dir: dir,
    }
}

/// Echoes every frame back on the connection it came from, until the peer leaves.
pub(crate) async fn echo_conn<C: Conn>(conn: C) {
    let mut framed = Framed::new(conn, FrameCodec::new());
    while let Some(Ok(frame)) = framed.next().await {
        if framed.send(frame).await.is_err() {
            break;
        }
    }
}

/// Accepts forever, echoing each connection in its own task.
pub(crate) fn spawn_echo_server<L: Listener>(mut listener: L) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((conn, _peer)) = listener.accept().await {
            tokio::spawn(echo_conn(conn));
        }
    })
}

/// Binds `setup`'s endpoint, starts an echo server, returns the bound endpoint.
pub(crate) async fn start_echo(setup: &Setup) -> (Endpoint, JoinHandle<()>) {
    let listener: AnyListener = setup.transport.bind(&setup.endpoint).await.unwrap();
    let bound = listener.local_endpoint().clone();
    (bound, spawn_echo_server(listener))
}

/// A recognisable payload of `len` bytes.
pub(crate) fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Sends one request frame per size and checks each echo, in order.
pub(crate) async fn echo_sizes<C: Conn>(conn: C, sizes: &[usize], seed: u8) {
    let mut framed = Framed::new(conn, FrameCodec::new());
    echo_frames(&mut framed, sizes, seed).await;
}

/// [`echo_sizes`] on a connection already framed, which stays open for more.
pub(crate) async fn echo_frames<C: Conn>(
    framed: &mut Framed<C, FrameCodec>,
    sizes: &[usize],
    seed: u8,
) {
    for (i, &size) in sizes.iter().enumerate() {
        let id = i as u64;
        let sent = payload(size, seed.wrapping_add(i as u8));
        framed
            .send(Frame::Request {
                id,
                payload: sent.clone(),
            })
            .await
            .unwrap();
        let echoed = framed.next().await.expect("connection closed").unwrap();
        match echoed {
            Frame::Request {
                id: got_id,
                payload: got,
            } => {
                assert_eq!(got_id, id);
                assert_eq!(got.len(), sent.len(), "size {size}");
                assert!(got == sent, "payload of size {size} corrupted");
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Tries one small echo; `Err` describes why it failed instead of panicking.
pub(crate) async fn try_echo<C: Conn>(conn: C) -> Result<(), String> {
    let mut framed = Framed::new(conn, FrameCodec::new());
    let sent = payload(32, 9);
    framed
        .send(Frame::Request {
            id: 1,
            payload: sent.clone(),
        })
        .await
        .map_err(|e| format!("send: {e}"))?;
    match framed.next().await {
        Some(Ok(Frame::Request { payload, .. })) if payload == sent => Ok(()),
        Some(Ok(other)) => Err(format!("unexpected frame {other:?}")),
        Some(Err(e)) => Err(format!("receive: {e}")),
        None => Err("connection closed".into()),
    }
}

/// The error and all its sources, joined with ": ".
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
