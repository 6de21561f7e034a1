//! Shared test helpers: one setup per transport, all on loopback.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use msg_socket::SocketOptions;
use msg_socket::transport::dev;
use msg_socket::transport::{AnyTransport, Quic, QuicOptions, Tls, TlsClientConfig, TlsOptions};

/// How to run a server and a client over one transport.
pub struct Setup {
    /// Transport name, for messages.
    pub name: &'static str,
    /// Endpoint for the server to bind (port 0 where there is a port).
    pub bind: String,
    /// Options for the binding side (certificates for TLS and QUIC).
    pub server: SocketOptions,
    /// Options for the connecting side (roots for TLS and QUIC).
    pub client: SocketOptions,
    /// Keeps the IPC directory alive.
    _dir: Option<tempfile::TempDir>,
}

/// Fast reconnects for tests: tens of milliseconds, not seconds.
/// An `inproc://` endpoint string no other test uses, tagged `tag`.
pub fn inproc(tag: &str) -> String {
    format!("inproc://{}", unique(tag))
}

pub fn quick(opts: &mut SocketOptions) -> &mut SocketOptions {
    opts.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100))
}

/// A name no other test uses: `prefix`, the process id and a counter.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// TLS and QUIC transports for a server and a client that trusts it.
pub fn secure_transports() -> (AnyTransport, AnyTransport) {
    let cert = dev::self_signed(["localhost", "127.0.0.1"]).expect("dev cert");
    let mut client_cfg = TlsClientConfig::new();
    client_cfg.add_root(cert.certificate());

    let mut tls_server = TlsOptions::new();
    tls_server.server(cert.server_config());
    let mut tls_client = TlsOptions::new();
    tls_client.client(client_cfg.clone());
    let mut quic_server = QuicOptions::new();
    quic_server.server(cert.server_config());
    let mut quic_client = QuicOptions::new();
    quic_client.client(client_cfg);

    let server = AnyTransport::new()
        .with_tls(Tls::new(&tls_server).expect("tls server"))
        .with_quic(Quic::new(&quic_server).expect("quic server"));
    let client = AnyTransport::new()
        .with_tls(Tls::new(&tls_client).expect("tls client"))
        .with_quic(Quic::new(&quic_client).expect("quic client"));
    (server, client)
}

/// One setup for each transport: tcp, ipc, quic, tls, inproc.
pub fn setups() -> Vec<Setup> {
    let (server_t, client_t) = secure_transports();
    let mut out = Vec::new();
    for name in ["tcp", "ipc", "quic", "tls", "inproc"] {
        let mut server = SocketOptions::new();
        let mut client = SocketOptions::new();
        quick(&mut server);
        quick(&mut client);
        server.transport(server_t.clone());
        client.transport(client_t.clone());
        let mut dir = None;
        let bind = match name {
            "ipc" => {
                let d = tempfile::tempdir().expect("tempdir");
                let path = d.path().join("sock");
                dir = Some(d);
                format!("ipc://{}", path.display())
            }
            "inproc" => format!("inproc://{}", unique("test")),
            other => format!("{other}://127.0.0.1:0"),
        };
        out.push(Setup {
            name,
            bind,
            server,
            client,
            _dir: dir,
        });
    }
    out
}

/// A setup for one transport by name.
pub fn setup(name: &str) -> Setup {
    setups()
        .into_iter()
        .find(|s| s.name == name)
        .expect("known transport")
}

/// Turns each `async fn behaviour(setup: Setup)` into one test per transport,
/// in a module named after the behaviour.
#[allow(unused_macros)]
macro_rules! over_every_transport {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test]
            async fn tcp() {
                super::$behaviour(super::common::setup("tcp")).await;
            }
            #[tokio::test]
            async fn ipc() {
                super::$behaviour(super::common::setup("ipc")).await;
            }
            #[tokio::test]
            async fn quic() {
                super::$behaviour(super::common::setup("quic")).await;
            }
            #[tokio::test]
            async fn tls() {
                super::$behaviour(super::common::setup("tls")).await;
            }
            #[tokio::test]
            async fn inproc() {
                super::$behaviour(super::common::setup("inproc")).await;
            }
        }
    )*};
}
