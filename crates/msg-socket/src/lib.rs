//! The messaging patterns of msg: request/reply, publish/subscribe,
//! pipelines, asynchronous request/reply and exclusive pairs, over any msg
//! transport.
//!
//! | socket | talks to | does |
//! |---|---|---|
//! | [`ReqSocket`] | [`RepSocket`] | sends requests, many in flight, round-robin over peers, each with a deadline |
//! | [`RepSocket`] | [`ReqSocket`] | a `Stream` of requests; replies go back on the connection they came from |
//! | [`PubSocket`] | [`SubSocket`] | publishes by topic; filters by prefix at the publisher; never waits for a subscriber |
//! | [`SubSocket`] | [`PubSocket`] | subscribes by prefix; a `Stream` of messages with sequence numbers |
//! | [`PushSocket`] | [`PullSocket`] | hands each message to one peer, round-robin, skipping full ones; waits, never drops |
//! | [`PullSocket`] | [`PushSocket`] | a `Stream` of messages, fair-queued over the pushers |
//! | [`DealerSocket`] | [`RouterSocket`], [`RepSocket`], [`DealerSocket`] | sends round-robin without waiting for replies; a `Stream` of whatever comes back |
//! | [`RouterSocket`] | [`ReqSocket`], [`DealerSocket`] | a `Stream` of `(Route, Message)`; `send_to` a peer by identity, an error (never a drop) when it cannot |
//! | [`PairSocket`] | [`PairSocket`] | exactly one peer, both ways; a second is refused in the handshake with a reason |
//! | [`PeerSocket`] | [`PeerSocket`] | symmetric; `Data`/`Ack` frames routed by the peer's identity (the reliable layer's link) |
//!
//! A [`Message`] has one part or several ([`MAX_PARTS`] at most, all within
//! the frame limit), sent and delivered whole: on Push/Pull, Dealer/Router,
//! Pair, Req/Rep ([`ReqSocket::request_message`],
//! [`Request::reply_message`]) and Pub/Sub
//! ([`PubSocket::publish_message`]).
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
//! Every socket type is one generic type, [`Socket<P>`](Socket), whose
//! parameter is the pattern's state machine (`ReqSocket` is
//! `Socket<ReqProto>`, and so on). The state machines in `proto/` make
//! every decision of their pattern (peer choice, pending requests and
//! their deadlines, high-water marks and drops, subscriptions, sequence
//! numbers, which connection holds a repeated identity) from inputs: connections up and
//! down, frames, application calls, time as an argument. They do no I/O,
//! spawn nothing, lock nothing and read no clock, and are tested on a
//! harness without sockets and fuzzed. One driver in `driver/` runs any of
//! them: accept and connect loops with handshakes and reconnects, one task
//! per connection that reads, feeds the protocol under one lock per read
//! and writes what it queued in batched vectored writes, one timer task per
//! socket, and the shim that keeps the protocol behind one mutex and wakes
//! whoever a call concerns.
//!
//! A request crosses four queues: the Req connection's queue, the Rep
//! socket's inbox, the Rep connection's queue, and its entry in the pending
//! table, which wakes the caller. The book's "Inside a socket" chapter
//! draws the whole path.
//!
//! # Feature flags
//!
//! - `ipc` (default): `ipc://` endpoints.
//! - `tls` (default): `tls://` endpoints.
//! - `quic` (default): `quic://` endpoints.

mod auth;
mod dealer;
mod driver;
mod error;
mod flow;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
mod message;
#[cfg(feature = "metrics")]
mod metrics_export;
mod monitor;
mod options;
mod pair;
mod peer;
mod pipeline;
mod proto;
mod publish;
mod rep;
mod req;
mod router;
mod socket;
mod subscribe;

pub use auth::{AuthRejection, AuthRequest, Authenticator, TokenTable};
pub use dealer::DealerSocket;
pub use driver::conn::PeerInfo;
pub use error::{
    ConfigError, HandshakeError, PeerSendError, PublishError, ReplyError, ReqError, RouteError,
    SendError, SocketError,
};
pub use message::{MAX_PARTS, Message};
#[cfg(feature = "metrics")]
pub use metrics_export::METRICS;
pub use monitor::{SocketEvent, SocketEvents, SocketStats};
pub use options::SocketOptions;
pub use pair::PairSocket;
pub use peer::{PeerEvent, PeerSocket};
pub use pipeline::{PullSocket, PushSocket};
pub use proto::backoff::BackoffPolicy;
pub use publish::PubSocket;
pub use rep::{RepSocket, Request};
pub use req::ReqSocket;
pub use router::{Route, RouterSocket};
pub use socket::{CloseReport, Socket};
pub use subscribe::{PubMessage, SubSocket};

/// The transport layer, re-exported for endpoint and TLS/QUIC configuration.
pub use msg_transport as transport;
/// The wire layer, re-exported for compression choices and limits.
pub use msg_wire as wire;
