//! The messaging patterns of msg: request/reply and publish/subscribe
//! sockets over any msg transport.
//!
//! | socket | talks to | does |
//! |---|---|---|
//! | [`ReqSocket`] | [`RepSocket`] | sends requests, many in flight, round-robin over peers, each with a deadline |
//! | [`RepSocket`] | [`ReqSocket`] | a `Stream` of requests; replies go back on the connection they came from |
//! | [`PubSocket`] | [`SubSocket`] | publishes by topic; filters by prefix at the publisher; never waits for a subscriber |
//! | [`SubSocket`] | [`PubSocket`] | subscribes by prefix; a `Stream` of messages with sequence numbers |
//! | [`PeerSocket`] | [`PeerSocket`] | symmetric; `Data`/`Ack` frames routed by the peer's identity (the reliable layer's link) |
//!
//! Any socket can [`bind`](ReqSocket::bind) or [`connect`](ReqSocket::connect),
//! to several endpoints at once, by endpoint string (`tcp://`, `ipc://`,
//! `quic://`, `tls://`, `inproc://`) or with a transport value
//! ([`bind_with`](ReqSocket::bind_with)). Connecting sockets reconnect by
//! themselves with capped exponential backoff and jitter; heartbeats find
//! dead peers; every queue is bounded and each socket documents what happens
//! at its high-water mark. [`SocketOptions`] lists every knob with its
//! default.
//!
//! Every connection starts with msg's handshake (see the `msg-wire` crate):
//! incompatible sockets (REQ to PUB) and other protocol versions are refused
//! with a reason on both sides, and a server-side [`Authenticator`] may
//! accept or reject each peer from its identity, token and address.
//!
//! Nothing a peer sends can panic a socket, stop it serving its other peers
//! or grow its memory without bound: a bad handshake or frame closes that
//! connection only, with a warning naming the peer, a counter
//! ([`SocketStats`]) and an event ([`SocketEvent`]).
//!
//! # Structure
//!
//! The protocol decisions (backoff, heartbeats, handshake verdicts,
//! subscriptions, gap counting) are sans-IO code in `proto/`, tested with
//! time as an argument. The drivers in `driver/` run one task per
//! connection that reads frames, feeds the pattern and drains a bounded
//! outgoing queue with batched, vectored writes.
//!
//! # Feature flags
//!
//! - `ipc` (default): `ipc://` endpoints.
//! - `tls` (default): `tls://` endpoints.
//! - `quic` (default): `quic://` endpoints.

mod auth;
mod driver;
mod error;
mod monitor;
mod options;
mod peer;
mod proto;
mod publish;
mod rep;
mod req;
mod socket;
mod subscribe;

pub use auth::{AuthRejection, AuthRequest, Authenticator};
pub use driver::conn::PeerInfo;
pub use error::{
    ConfigError, HandshakeError, PeerSendError, PublishError, ReplyError, ReqError, SocketError,
};
pub use monitor::{SocketEvent, SocketEvents, SocketStats};
pub use options::SocketOptions;
pub use peer::{PeerEvent, PeerSocket};
pub use proto::backoff::BackoffPolicy;
pub use publish::PubSocket;
pub use rep::{RepSocket, Request};
pub use req::ReqSocket;
pub use socket::{CloseReport, Socket};
pub use subscribe::{PubMessage, SubSocket};

/// The transport layer, re-exported for endpoint and TLS/QUIC configuration.
pub use msg_transport as transport;
/// The wire layer, re-exported for compression choices and limits.
pub use msg_wire as wire;
