//! Test support shared by msg's crates, so that each helper has one home.
//!
//! A dev-dependency of `msg-socket` and `msg-reliable` (never a normal one,
//! and never published):
//!
//! - [`secure_transports`]: TLS and QUIC transports for a server and a
//!   client that trusts it, on a development certificate;
//! - [`MutualTls`]: a development CA, a server that requires client
//!   certificates from it (TLS and QUIC), and clients with a certificate
//!   for any name;
//! - [`unique`] and [`unique_inproc`]: names no other test in the process
//!   uses, for `inproc://` endpoints and files;
//! - [`next_matching`]: the next item of an event stream that a test is
//!   waiting for, with a deadline;
//! - [`Rng`]: a small seeded generator, so that a randomised test replays
//!   from its seed;
//! - [`postgres`]: a real PostgreSQL server for the PostgreSQL backend's
//!   tests (the one `MSG_TEST_POSTGRES` names, or a throwaway cluster);
//! - [`UdpLink`]: a UDP relay on loopback that a test cuts and heals, for
//!   QUIC across an outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use msg_transport::{
    AnyTransport, Quic, QuicOptions, Tls, TlsClientConfig, TlsOptions, TlsServerConfig, dev,
};

pub mod postgres;
mod rng;
mod udp_link;

pub use rng::Rng;
pub use udp_link::UdpLink;

/// TLS and QUIC transports for a server and a client that trusts it.
///
/// Both sides also keep the transports [`AnyTransport::new`] has (TCP, IPC,
/// inproc), so one pair serves every endpoint scheme. The server presents
/// a development certificate for `localhost` and `127.0.0.1`; the client
/// trusts exactly that certificate.
///
/// # Panics
///
/// If the certificate or a transport cannot be made: a broken test setup.
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

/// A development CA, with transports for a server that requires client
/// certificates signed by it and for clients that present one.
///
/// Both sides keep the transports [`AnyTransport::new`] has (TCP, IPC,
/// inproc) and get TLS and QUIC; the server presents a certificate for
/// `localhost` and `127.0.0.1`, which the clients trust through the CA.
pub struct MutualTls {
    ca: dev::DevCa,
    server: TlsServerConfig,
}

impl MutualTls {
    /// A new CA and server certificate.
    ///
    /// # Panics
    ///
    /// If a certificate cannot be made: a broken test setup.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let ca = dev::DevCa::new("msg test ca").expect("dev ca");
        let cert = ca
            .server_cert(["localhost", "127.0.0.1"])
            .expect("server cert");
        let mut server = cert.server_config();
        server.require_client_auth(vec![ca.certificate()]);
        Self { ca, server }
    }

    /// The server's transports: TLS and QUIC requiring a client certificate
    /// from the CA.
    ///
    /// # Panics
    ///
    /// If a transport cannot be made: a broken test setup.
    pub fn server(&self) -> AnyTransport {
        let mut tls = TlsOptions::new();
        tls.server(self.server.clone());
        let mut quic = QuicOptions::new();
        quic.server(self.server.clone());
        AnyTransport::new()
            .with_tls(Tls::new(&tls).expect("tls server"))
            .with_quic(Quic::new(&quic).expect("quic server"))
    }

    /// A client's transports, presenting a certificate the CA signed with
    /// the common name `name`.
    ///
    /// # Panics
    ///
    /// If the certificate or a transport cannot be made: a broken test setup.
    pub fn client(&self, name: &str) -> AnyTransport {
        let cert = self.ca.client_cert(name).expect("client cert");
        let mut config = TlsClientConfig::new();
        config.add_root(self.ca.certificate());
        config.client_auth(cert.cert_chain(), cert.private_key());
        let mut tls = TlsOptions::new();
        tls.client(config.clone());
        let mut quic = QuicOptions::new();
        quic.client(config);
        AnyTransport::new()
            .with_tls(Tls::new(&tls).expect("tls client"))
            .with_quic(Quic::new(&quic).expect("quic client"))
    }
}

/// A name no other caller in this process gets: `prefix`, the process id
/// and a counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An `inproc://` endpoint string no other test uses, tagged `tag`.
pub fn unique_inproc(tag: &str) -> String {
    format!("inproc://{}", unique(tag))
}

/// How long [`next_matching`] waits: far longer than anything a test waits
/// for, on a paused clock it costs nothing, and it still ends a hung test.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// The first item of `events` that `pick` maps to `Some`, skipping the
/// others.
///
/// # Panics
///
/// If the stream ends first, or nothing matches within
/// [`EVENT_DEADLINE`] (of tokio time, so a paused clock reaches it at once
/// when nothing else can happen).
pub async fn next_matching<S, T>(events: &mut S, mut pick: impl FnMut(S::Item) -> Option<T>) -> T
where
    S: Stream + Unpin,
{
    tokio::time::timeout(EVENT_DEADLINE, async {
        loop {
            let event = events.next().await.expect("the event stream ended");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await
    .expect("the expected event never came")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique("a"), unique("a"));
        assert!(unique_inproc("t").starts_with("inproc://t-"));
    }

    #[tokio::test(start_paused = true)]
    async fn next_matching_skips_what_it_does_not_want() {
        let mut events = futures::stream::iter([1, 2, 3, 4]);
        assert_eq!(
            next_matching(&mut events, |n| (n % 2 == 0).then_some(n * 10)).await,
            20
        );
        assert_eq!(
            next_matching(&mut events, |n| (n > 3).then_some(n)).await,
            4
        );
    }
}
