//! Shared test helpers: one setup per transport, all on loopback.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures::StreamExt;
use msg_socket::{PubMessage, SocketOptions, SubSocket};
pub use msg_testkit::{secure_transports, unique};

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

/// An `inproc://` endpoint string no other test uses, tagged `tag`.
pub fn inproc(tag: &str) -> String {
    msg_testkit::unique_inproc(tag)
}

/// Fast reconnects for tests: tens of milliseconds, not seconds.
pub fn quick(opts: &mut SocketOptions) -> &mut SocketOptions {
    opts.reconnect_initial(Duration::from_millis(10))
        .reconnect_max(Duration::from_millis(100))
}

/// The next message of `sub`; fails the test if none comes within
/// `within` or the socket closes.
pub async fn next_message(sub: &mut SubSocket, within: Duration) -> PubMessage {
    tokio::time::timeout(within, sub.next())
        .await
        .expect("a message in time")
        .expect("the socket is open")
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
