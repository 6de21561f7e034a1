//! msg: brokerless messaging sockets in the style of ZeroMQ, on tokio.
//!
//! Pick a pattern, pick a transport, bind or connect, and send
//! [`Bytes`](bytes::Bytes) (or a multipart [`Message`]):
//!
//! ```
//! use msg::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rep = RepSocket::new();
//! let endpoint = rep.bind("tcp://127.0.0.1:0").await?;
//! tokio::spawn(rep.serve(8, |request, _peer| async move { request }));
//!
//! let req = ReqSocket::new();
//! req.connect(&endpoint.to_string())?;
//! assert_eq!(req.request("echo me").await?, "echo me");
//! # Ok(()) }
//! ```
//!
//! | pattern | sockets | what it is for |
//! |---|---|---|
//! | request/reply | [`ReqSocket`], [`RepSocket`] | RPC-style calls, many in flight, spread over servers |
//! | publish/subscribe | [`PubSocket`], [`SubSocket`] | one-to-many streams filtered by topic prefix |
//! | pipeline | [`PushSocket`], [`PullSocket`] | hand work to whichever worker has room; collect from all fairly |
//! | asynchronous request/reply | [`DealerSocket`], [`RouterSocket`] | requests without lock-step; servers and brokers that route by peer identity |
//! | exclusive pair | [`PairSocket`] | one connection between two sockets, messages both ways |
//! | peer | [`PeerSocket`] | symmetric, routed by identity; carries the reliable layer |
//! | reliable delivery | `reliable::ReliableSocket` (feature `reliable`) | every message once, in order, across disconnects and restarts |
//!
//! Endpoints are strings: `tcp://host:port`, `ipc:///path`,
//! `quic://host:port`, `tls://host:port`, `inproc://name`. Switching
//! transports is a change of string (TLS and QUIC also need certificates:
//! [`SocketOptions::transport`] with a [`transport::AnyTransport`]).
//!
//! This crate only re-exports: the layers live in `msg-wire` (the protocol,
//! [`wire`]), `msg-transport` (byte streams, [`transport`]) and `msg-socket`
//! (the patterns). The book in the repository explains each of them.
//!
//! # Feature flags
//!
//! All on by default:
//!
//! - `ipc`: Unix domain socket endpoints (`ipc://`).
//! - `tls`: TLS over TCP (`tls://`), with mutual TLS and development
//!   certificates.
//! - `quic`: QUIC endpoints (`quic://`).
//! - `gzip`, `zstd`, `snappy`, `lz4`: compression algorithms. A receiver
//!   without an algorithm refuses frames compressed with it; the public
//!   types do not change with features.
//! - `reliable`: the reliable layer, [`reliable`] (the `msg-reliable`
//!   crate) with its in-memory backend.
//! - `redb`: the reliable layer's durable backend, `reliable::RedbBackend`
//!   (implies `reliable`). On by default because a reliable layer that
//!   forgets on restart is rarely what you want; turn default features off
//!   to drop the redb dependency.
//!
//! Off by default:
//!
//! - `metrics`: every socket's counters and gauges, and the reliable
//!   layer's, through the `metrics` facade; install an exporter (such as
//!   `metrics-exporter-prometheus`) and set
//!   [`SocketOptions::name`] to label them. `METRICS` lists the socket
//!   metrics, `reliable::METRICS` the reliable layer's.
//! - `postgres`: the reliable layer's shared backend,
//!   `reliable::PostgresBackend` (implies `reliable`): an identity's state
//!   in a PostgreSQL database, so that another instance, on another
//!   machine, can take the identity over when its owner dies. Adds
//!   `tokio-postgres`; it adds types and changes none.
//! - `fault`: fault injection for tests, `transport::Faulty` (delays,
//!   short reads and writes, injected errors, cuts). Enable it in
//!   `[dev-dependencies]`; it adds types and changes none.

#[cfg(feature = "metrics")]
pub use msg_socket::METRICS;
pub use msg_socket::{
    AuthRejection, AuthRequest, Authenticator, BackoffPolicy, CloseReport, ConfigError,
    DealerSocket, HandshakeError, MAX_PARTS, Message, PairSocket, PeerEvent, PeerInfo,
    PeerSendError, PeerSocket, PubMessage, PubSocket, PublishError, PullSocket, PushSocket,
    RepSocket, ReplyError, ReqError, ReqSocket, Request, Route, RouteError, RouterSocket,
    SendError, SocketError, SocketEvent, SocketEvents, SocketOptions, SocketStats, SubSocket,
    TokenTable,
};
pub use msg_wire::Compression;

/// Transports, endpoints and certificates (the `msg-transport` crate).
pub mod transport {
    pub use msg_transport::*;
}

/// The wire protocol: frames, handshake, compression, limits (the
/// `msg-wire` crate).
pub mod wire {
    pub use msg_wire::*;
}

/// The reliable layer: persistent, acknowledged, ordered delivery between
/// peers that come and go (the `msg-reliable` crate; feature `reliable`).
#[cfg(feature = "reliable")]
pub mod reliable {
    pub use msg_reliable::*;
}

/// Everything a typical program needs, in one `use msg::prelude::*`.
pub mod prelude {
    #[cfg(feature = "postgres")]
    pub use crate::reliable::PostgresBackend;
    #[cfg(feature = "redb")]
    pub use crate::reliable::RedbBackend;
    #[cfg(feature = "reliable")]
    pub use crate::reliable::{Delivery, MemoryBackend, PeerId, ReliableOptions, ReliableSocket};
    pub use crate::{
        Compression, DealerSocket, Message, PairSocket, PubMessage, PubSocket, PullSocket,
        PushSocket, RepSocket, ReqSocket, Request, Route, RouterSocket, SocketEvent, SocketOptions,
        SubSocket,
    };
    pub use bytes::Bytes;
    pub use futures::StreamExt as _;
}
