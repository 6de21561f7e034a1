//! What every connection shares, whatever its pattern: who the peer is,
//! how a connection ended and how that is reported, the heartbeat timer,
//! and the vectored write a connection's writer uses. The connection task
//! itself is in `link.rs`.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Buf, Bytes};
use msg_transport::{PeerAddr, PeerCertificates};
use msg_wire::{Reason, SocketType};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::auth::Principal;
use crate::driver::core::Core;
use crate::monitor::SocketEvent;

/// How long a closing connection may spend on its last words (the `Close`
/// frame and the shutdown of its write half) to a peer that does not read.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Most characters of a reason text sent in a `Close` frame (at most 800
/// bytes of UTF-8, well within the wire limit of 1024).
pub(crate) const MAX_CLOSE_TEXT_CHARS: usize = 200;

/// Who is at the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The identity the peer announced in its handshake.
    pub identity: Bytes,
    /// The peer's address; for IPC and inproc it carries a per-connection
    /// id, so every client is its own peer.
    pub addr: PeerAddr,
    /// The peer's socket type.
    pub socket_type: SocketType,
    /// This socket's id for the connection, unique within the process.
    pub conn_id: u64,
    /// The certificate chain the peer presented and the transport verified,
    /// with the names in it: over `tls://` and `quic://`, a client's
    /// certificate on a server that requires them (mutual TLS), the server's
    /// on a client. `None` for every other connection.
    pub certificates: Option<Arc<PeerCertificates>>,
    /// Who the peer authenticated as, for repeated identities.
    pub(crate) principal: Principal,
}

/// How a connection ended, for events and logs.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer closed (EOF or a `Close` frame).
    PeerClosed(String),
    /// We were asked to close (socket shutdown).
    Local,
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The peer broke the protocol.
    Protocol(Reason, String),
    /// Heartbeat timeout.
    Silent,
}

/// Counts, logs and reports how a connection ended.
pub(crate) fn report_end(core: &Core, addr: PeerAddr, end: &End) {
    let reason = match end {
        End::PeerClosed(why) => why.clone(),
        End::Local => "closed locally".to_owned(),
        End::Io(e) => format!("i/o error: {e}"),
        End::Protocol(code, text) => {
            core.counters.protocol_errors.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, %code, "closed connection: peer broke the protocol: {text}");
            core.emit(SocketEvent::PeerMisbehaved {
                peer: addr.clone(),
                error: text.clone(),
            });
            format!("protocol error: {text}")
        }
        End::Silent => {
            core.counters.heartbeat_timeouts.fetch_add(1, Relaxed);
            tracing::warn!(peer = %addr, "closed connection: peer silent past the heartbeat timeout");
            core.emit(SocketEvent::PeerMisbehaved {
                peer: addr.clone(),
                error: "heartbeat timeout".into(),
            });
            "heartbeat timeout".to_owned()
        }
    };
    tracing::debug!(peer = %addr, %reason, "disconnected");
    core.emit(SocketEvent::Disconnected { peer: addr, reason });
}

/// Payload bytes the reader delivers before it yields to other tasks.
///
/// A large frame is a view into the read buffer it arrived in, so that
/// buffer can be reused only once the application has dropped the frame:
/// then the reader's next `reserve` reclaims the whole allocation in place
/// (reads go straight into memory that is already mapped, and the codec has
/// nothing to grow or copy). Without this a reader whose socket always has
/// more bytes keeps reading until tokio's budget runs out, while an
/// application on the same thread has not had a chance to take, let alone
/// drop, what was delivered: every large frame would then get a fresh
/// buffer, grown step by step (copies) and faulted in page by page. One
/// yield per 256 KiB costs little next to moving that many bytes, and also
/// bounds how far the reader runs ahead of such an application.
pub(crate) const YIELD_AFTER_BYTES: usize = 256 * 1024;

/// Keeps one pinned `Sleep` on the heartbeat deadline, moving it only when
/// the deadline changes.
pub(crate) struct HeartbeatTimer {
    /// The deadline the sleep is set to, if any.
    armed: Option<std::time::Instant>,
}

impl HeartbeatTimer {
    pub(crate) fn new() -> Self {
        Self { armed: None }
    }

    /// Sets `sleep` to `deadline` unless it is set to it already; returns
    /// whether there is a deadline to wait for.
    pub(crate) fn arm(
        &mut self,
        sleep: std::pin::Pin<&mut tokio::time::Sleep>,
        deadline: Option<std::time::Instant>,
    ) -> bool {
        if let Some(d) = deadline {
            if self.armed != Some(d) {
                sleep.reset(d.into());
                self.armed = Some(d);
            }
        }
        deadline.is_some()
    }

    /// The sleep fired: set it again before the next wait, even to the same
    /// deadline.
    pub(crate) fn fired(&mut self) {
        self.armed = None;
    }
}

/// Most bytes gathered into one write; beyond this the writer writes and
/// comes back for more, so one connection cannot hog memory in a batch.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Frames whose parts are smaller than this are copied into one buffer (a
/// copy is cheaper than an extra iovec); larger payloads go as their own
/// slice, uncopied.
pub(crate) const COALESCE_BELOW: usize = 4 * 1024;

/// Writes every buffer, in as few system calls as the stream allows,
/// reporting each write's byte count to `wrote`.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bufs: &mut Vec<Bytes>,
    mut wrote: impl FnMut(usize),
) -> std::io::Result<()> {
    let mut start = 0;
    while start < bufs.len() {
        if bufs[start].is_empty() {
            start += 1;
            continue;
        }
        let n = if writer.is_write_vectored() {
            let slices: Vec<IoSlice<'_>> = bufs[start..]
                .iter()
                .take(64)
                .map(|b| IoSlice::new(b))
                .collect();
            writer.write_vectored(&slices).await?
        } else {
            writer.write(&bufs[start]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        wrote(n);
        let mut left = n;
        while left > 0 {
            let b = &mut bufs[start];
            let take = left.min(b.len());
            b.advance(take);
            left -= take;
            if b.is_empty() {
                start += 1;
            }
        }
    }
    bufs.clear();
    Ok(())
}
