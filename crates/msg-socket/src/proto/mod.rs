//! Sans-IO protocol logic: no sockets, no tasks, no clocks (time is an
//! argument).
//!
//! Each pattern is a [`Protocol`]: a plain struct that owns its live
//! connections (a [`ConnTable`](conns::ConnTable)) and every decision of
//! its pattern. The driver feeds it (connections up and down, frames,
//! application calls, timeouts) and acts on what it leaves behind: frames
//! queued per connection, connections to close, application tasks to wake.

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use msg_wire::{Frame, Reason, SocketType};

use crate::driver::conn::PeerInfo;
use crate::error::ConfigError;
use crate::options::SocketOptions;

pub(crate) mod backoff;
pub(crate) mod conns;
pub(crate) mod dealer;
pub(crate) mod handshake;
#[cfg(any(test, fuzzing))]
pub(crate) mod harness;
pub(crate) mod heartbeat;
pub(crate) mod identities;
pub(crate) mod inbox;
pub(crate) mod outbox;
pub(crate) mod pair;
pub(crate) mod peer;
pub(crate) mod pending;
pub(crate) mod pipeline;
pub(crate) mod publish;
pub(crate) mod rep;
pub(crate) mod req;
pub(crate) mod router;
pub(crate) mod subscribe;
pub(crate) mod topics;

#[cfg(test)]
mod tests;

use conns::{ConnId, ConnTable};

/// Why a pattern refuses what a peer sent: the connection is closed with
/// this code and text.
pub(crate) type Violation = (Reason, &'static str);

/// Which application tasks the driver must wake after a call into a
/// protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    /// Something arrived for the application to take.
    pub(crate) deliveries: bool,
    /// The pattern takes frames again from connections it held back (see
    /// [`Protocol::can_read`]).
    pub(crate) readable: bool,
    /// The pattern's view of its peers changed (a subscriber subscribed),
    /// for tasks that wait for a number of them.
    pub(crate) changed: bool,
}

/// The counters a pattern keeps itself: what it decided to send, deliver
/// or drop. The driver keeps the rest (bytes, reconnects, handshakes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoStats {
    /// Messages queued for a peer.
    pub(crate) msgs_sent: u64,
    /// Messages received from peers.
    pub(crate) msgs_received: u64,
    /// Messages dropped at a high-water mark.
    pub(crate) dropped_hwm: u64,
    /// Messages a peer reported (by sequence number) it dropped for us.
    pub(crate) gaps: u64,
    /// Connections refused because another principal holds their identity.
    pub(crate) identity_refusals: u64,
}

/// One pattern's state machine.
///
/// The trait is public in a private module (sealed): it bounds the public
/// [`Socket`](crate::Socket) type, but no one outside the crate can name or
/// implement it.
///
/// Inputs are the `handle_*` methods and the pattern's own application
/// calls; outputs are left in the connection table (frames to write,
/// connections to close) and reported by [`poll_wake`](Self::poll_wake).
/// Nothing here blocks, spawns, locks or reads a clock.
pub trait Protocol: Send + 'static {
    /// What the pattern keeps per connection.
    type ConnState: Send;

    /// What the application takes from the socket's receiving handle
    /// (`()` for the patterns whose handle receives nothing this way).
    type Delivery: Send + std::fmt::Debug;

    /// The socket type announced in the handshake.
    const SOCKET_TYPE: SocketType;

    /// Refuses options this pattern cannot work with (beyond what
    /// [`SocketOptions`] checks for every socket).
    fn check(_options: &SocketOptions) -> Result<(), ConfigError> {
        Ok(())
    }

    /// A state machine for a socket with these options (already valid).
    fn new(options: &SocketOptions) -> Self;

    /// The live connections.
    fn conns(&self) -> &ConnTable<Self::ConnState>;

    /// The live connections, to queue on and to take batches from.
    fn conns_mut(&mut self) -> &mut ConnTable<Self::ConnState>;

    /// A peer passed the server's handshake checks (and authentication) and
    /// is about to be accepted as `peer`. An `Err` refuses it before it is
    /// up: the peer hears a Reject with this reason instead of an Accept
    /// (PAIR turns away a second peer so, PEER and ROUTER a repeated
    /// identity of another principal).
    fn admit(&mut self, _peer: &PeerInfo) -> Result<(), Violation> {
        Ok(())
    }

    /// A connection finished its handshake.
    fn handle_conn_up(&mut self, now: Instant, peer: Arc<PeerInfo>);

    /// Whether the pattern refused `conn` when it came up, because another
    /// principal holds the identity it announced (PEER and ROUTER): it is
    /// being closed with [`Reason::IdentityInUse`], and the driver reports
    /// it. True until the connection is down.
    fn is_refused(&self, _conn: ConnId) -> bool {
        false
    }

    /// Whether the pattern closed `conn` as soon as it came up because it
    /// has every peer it takes (PAIR, with its one peer): asked right after
    /// [`handle_conn_up`](Self::handle_conn_up). The driver then waits
    /// before dialling that endpoint again, as for a refused identity,
    /// rather than redialling at the backoff's first delay.
    fn is_occupied(&self, _conn: ConnId) -> bool {
        false
    }

    /// A connection ended; whatever was queued on it is dropped.
    fn handle_conn_down(&mut self, now: Instant, conn: ConnId);

    /// A frame other than heartbeats and `Close` arrived on `conn`. An
    /// `Err` means the peer broke the pattern's protocol: the driver closes
    /// the connection with that reason.
    fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Frame) -> Result<(), Violation>;

    /// A multipart message arrived on `conn`: the parts before its last
    /// (at least one), and the frame that carries the last. Patterns
    /// without multipart messages refuse it.
    fn handle_message(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _head: Vec<Bytes>,
        _last: Frame,
    ) -> Result<(), Violation> {
        Err((
            Reason::ProtocolError,
            "this socket type does not take multipart messages",
        ))
    }

    /// Messages (and their bytes) that wait in the pattern for a
    /// connection to go on, beyond what is queued on connections.
    fn parked(&self) -> (usize, usize) {
        (0, 0)
    }

    /// Time passed; act on what is due at `now`.
    fn handle_timeout(&mut self, _now: Instant) {}

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Whether the pattern takes the next frame from `conn`, of `next`
    /// payload bytes (`None`: whether the driver may read more at all).
    /// False while the pattern applies backpressure: the driver holds the
    /// frame and stops reading until [`Wake::readable`].
    fn can_read(&self, _conn: ConnId, _next: Option<usize>) -> bool {
        true
    }

    /// Which application tasks to wake since the last call.
    fn poll_wake(&mut self) -> Wake;

    /// Tasks of the pattern's own waiters to wake (a request that ended),
    /// moved into `out`.
    fn drain_wakers(&mut self, _out: &mut Vec<Waker>) {}

    /// The pattern's counters.
    fn stats(&self) -> ProtoStats;
}

/// Makes room in `scratch` for a header of `len` bytes to be stamped into
/// (see `EncodedFrame::with_seq` and `with_id`), a chunk at a time: room
/// for up to [`HEADERS_PER_CHUNK`] headers, at most [`SCRATCH_CHUNK`]
/// bytes. So a publish to many subscribers, or many requests, allocate once
/// per chunk rather than once per header. (Left to itself, `BytesMut` would
/// do the latter: once earlier headers split off it are still queued, it
/// cannot reuse its buffer and, remembering no capacity below 1 KiB,
/// allocates exactly one header each time.) A queued header keeps its chunk
/// alive until written, so a queue pins at most [`SCRATCH_CHUNK`] bytes per
/// queued frame beyond what it counts.
pub(crate) fn reserve_header(scratch: &mut BytesMut, len: usize) {
    if scratch.capacity() < len {
        let chunk = len
            .saturating_mul(HEADERS_PER_CHUNK)
            .min(SCRATCH_CHUNK)
            .max(len);
        scratch.reserve(chunk);
    }
}

/// Headers stamped from one scratch allocation, when they fit in
/// [`SCRATCH_CHUNK`].
pub(crate) const HEADERS_PER_CHUNK: usize = 64;

/// Largest scratch allocation for headers, in bytes.
pub(crate) const SCRATCH_CHUNK: usize = 2048;
