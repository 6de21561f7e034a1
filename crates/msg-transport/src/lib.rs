//! Transports of msg: byte streams between peers over TCP, Unix domain sockets, QUIC,
//! TLS and in-process pipes, behind one small trait.
//!
//! A [`Transport`] binds a [`Listener`] at an [`Endpoint`] and connects to one; both
//! sides get a connection that is just `AsyncRead + AsyncWrite`, plus the peer's
//! [`PeerAddr`]. Nothing here knows about frames, sockets or patterns: msg's sockets
//! put their framing and handshakes on top, and choose the transport at run time from
//! the endpoint string through [`AnyTransport`]:
//!
//! ```
//! use msg_transport::{AnyTransport, Endpoint, Listener, Transport};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = AnyTransport::new();
//! let endpoint: Endpoint = "tcp://127.0.0.1:0".parse()?;
//! let mut listener = transport.bind(&endpoint).await?;
//! let bound = listener.local_endpoint().clone(); // the real port
//!
//! let (mut client, _) = transport.connect(&bound).await?;
//! let (mut server, peer) = listener.accept().await?;
//! client.write_all(b"hi").await?;
//! let mut buf = [0; 2];
//! server.read_exact(&mut buf).await?;
//! println!("{peer} said {:?}", std::str::from_utf8(&buf)?);
//! # Ok(()) }
//! ```
//!
//! | endpoint | transport | notes |
//! |---|---|---|
//! | `tcp://host:port` | [`Tcp`] | `TCP_NODELAY`, keep-alive ([`TcpOptions`]) |
//! | `ipc:///path` | [`Ipc`] | Unix domain socket; stale socket files replaced |
//! | `tls://host:port` | [`Tls`] | rustls over TCP; mutual TLS optional |
//! | `quic://host:port` | [`Quic`] | quinn; one stream per connection |
//! | `inproc://name` | [`Inproc`] | `tokio::io::duplex` pipes, for tests and same-process use |
//!
//! Certificates for TLS and QUIC are [`Certificate`]s and [`PrivateKey`]s, loaded from
//! PEM or made for development by [`dev`]. Both use one rustls crypto provider,
//! aws-lc-rs, which prefers the post-quantum hybrid key exchange X25519MLKEM768. A
//! connection reports the peer's verified certificate chain and the names in it through
//! [`Conn::peer_certificates`] ([`PeerCertificates`]). For tests of the layers above, `Faulty`
//! (feature `fault`) wraps any transport and injects delays, short reads and writes,
//! errors and cuts.
//!
//! This crate has no state machine of its own: each transport is a thin driver over
//! tokio, rustls or quinn. TLS and QUIC listeners run handshakes in background tasks so
//! that `accept` only ever yields connections ready for bytes.
//!
//! # Feature flags
//!
//! - `ipc` (default): the [`Ipc`] transport, on Unix platforms.
//! - `tls` (default): the [`Tls`] transport, certificates and [`dev`] certificates.
//! - `quic` (default): the [`Quic`] transport, certificates and [`dev`] certificates.
//! - `fault` (off): fault injection for tests: `Faulty`, `FaultyConn`, `FaultOptions`
//!   and `FaultHandle`. Enable it in the `[dev-dependencies]` of the crates whose tests
//!   use it; it adds types and changes none.
//!
//! TCP, inproc and endpoints are always available. With a feature off,
//! its scheme still parses, and [`AnyTransport`] reports it as
//! [`TransportError::Unsupported`]. The variants of [`AnyConn`] and [`AnyListener`]
//! follow the features (both enums are `#[non_exhaustive]`).

#[cfg(any(feature = "tls", feature = "quic"))]
mod accept;
mod any;
#[cfg(any(feature = "tls", feature = "quic"))]
mod certs;
#[cfg(any(feature = "tls", feature = "quic"))]
pub mod dev;
mod endpoint;
mod error;
#[cfg(feature = "fault")]
mod fault;
mod inproc;
#[cfg(all(unix, feature = "ipc"))]
mod ipc;
mod peer_certs;
#[cfg(feature = "quic")]
mod quic;
mod tcp;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use any::{AnyConn, AnyListener, AnyTransport};
#[cfg(any(feature = "tls", feature = "quic"))]
pub use certs::{ALPN, Certificate, PrivateKey, TlsClientConfig, TlsServerConfig};
pub use endpoint::{Endpoint, EndpointError, EndpointErrorKind, Host, PeerAddr, Scheme};
pub use error::TransportError;
#[cfg(feature = "fault")]
pub use fault::{FaultHandle, FaultOptions, Faulty, FaultyConn, FaultyListener};
pub use inproc::{INPROC_BUFFER_SIZE, Inproc, InprocListener};
#[cfg(all(unix, feature = "ipc"))]
pub use ipc::{Ipc, IpcListener};
pub use peer_certs::{CertName, CertNames, PeerCertificates};
#[cfg(feature = "quic")]
pub use quic::{Quic, QuicConn, QuicListener, QuicOptions};
pub use tcp::{Tcp, TcpListener, TcpOptions};
#[cfg(feature = "tls")]
pub use tls::{Tls, TlsConn, TlsListener, TlsOptions};
pub use transport::{Conn, Listener, Transport};
