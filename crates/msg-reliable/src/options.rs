//! Options of the reliable layer: every knob with its unit, its default and
//! its trade-off.

use std::time::Duration;

use crate::error::ReliableError;

/// When a delivered message counts as processed by the application.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckMode {
    /// The application acknowledges each delivery when it has processed it.
    /// The message stays stored until then, and is delivered again after a
    /// restart if it was not acknowledged: at-least-once to the application
    /// (exactly-once for an application whose processing and
    /// acknowledgement are one atomic step). The default.
    #[default]
    Manual,
    /// A delivery counts as processed once it is handed to the application.
    /// Only the acceptance watermark is stored, not the payload, so a crash
    /// between accepting a message and the application processing it loses
    /// it for the application: at-most-once to the application. Still in
    /// order and without duplicates.
    Auto,
}

/// Options of the reliable layer, shared by both directions of every peer
/// session.
///
/// Build one with [`ReliableOptions::new`], change what you need through the
/// setters (each documents its unit and default), then share it as an
/// `Arc`. Sessions check it with [`validate`](ReliableOptions::validate)
/// when they are created. Every limit is per peer.
///
/// ```
/// use std::time::Duration;
/// use msg_reliable::ReliableOptions;
///
/// let mut opts = ReliableOptions::new();
/// opts.window(64)
///     .ack_timeout(Duration::from_millis(500))
///     .max_outbox_messages(10_000);
/// opts.validate()?;
/// # Ok::<(), msg_reliable::ReliableError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReliableOptions {
    pub(crate) window: usize,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_ack_timeout: Duration,
    pub(crate) max_outbox_messages: usize,
    pub(crate) max_outbox_bytes: usize,
    pub(crate) hold_back_messages: usize,
    pub(crate) hold_back_bytes: usize,
    pub(crate) recv_window: usize,
    pub(crate) recv_window_bytes: usize,
    pub(crate) ack_mode: AckMode,
    pub(crate) metrics_interval: Duration,
}

impl Default for ReliableOptions {
    fn default() -> Self {
        Self {
            window: 256,
            ack_timeout: Duration::from_secs(1),
            max_ack_timeout: Duration::from_secs(30),
            max_outbox_messages: 100_000,
            max_outbox_bytes: 64 * 1024 * 1024,
            hold_back_messages: 1024,
            hold_back_bytes: 16 * 1024 * 1024,
            recv_window: 4096,
            recv_window_bytes: 64 * 1024 * 1024,
            ack_mode: AckMode::Manual,
            metrics_interval: Duration::from_secs(1),
        }
    }
}

impl ReliableOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most messages in flight to a peer (sent, not yet acknowledged), in
    /// messages.
    ///
    /// Larger windows keep a long or fast link busy; after a loss, go-back-N
    /// resends up to this many. Must be at least 1. Default: 256.
    pub fn window(&mut self, messages: usize) -> &mut Self {
        self.window = messages;
        self
    }

    /// How long the sender waits for an acknowledgement to make progress
    /// before it resends everything unacknowledged.
    ///
    /// It doubles after each timeout without progress, up to
    /// [`max_ack_timeout`](Self::max_ack_timeout), and returns to this value
    /// when an acknowledgement arrives. It only runs while the link is up
    /// (a link coming up resends at once). Shorter finds silent losses
    /// sooner at the cost of spurious resends on slow links. Must not be
    /// zero. Default: 1 s.
    pub fn ack_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.ack_timeout = timeout;
        self
    }

    /// Upper bound of the doubling [`ack_timeout`](Self::ack_timeout).
    /// Must be at least `ack_timeout`. Default: 30 s.
    pub fn max_ack_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.max_ack_timeout = timeout;
        self
    }

    /// Most messages stored for a peer and not yet acknowledged by it, in
    /// messages.
    ///
    /// Past it, [`ReliableSocket::send_to`](crate::ReliableSocket::send_to)
    /// waits for room and
    /// [`try_send_to`](crate::ReliableSocket::try_send_to) fails with
    /// [`ReliableError::OutboxFull`]. The outbox is also kept in memory for retransmission, so this with
    /// [`max_outbox_bytes`](Self::max_outbox_bytes) bounds memory per peer.
    /// Must be at least 1. Default: 100,000.
    pub fn max_outbox_messages(&mut self, messages: usize) -> &mut Self {
        self.max_outbox_messages = messages;
        self
    }

    /// Most payload bytes stored for a peer and not yet acknowledged by it.
    ///
    /// Past it, sending waits or fails as for
    /// [`max_outbox_messages`](Self::max_outbox_messages); a single message
    /// larger than this can never be sent (`OutboxFull` at once). Must be at least 1.
    /// Default: 64 MiB.
    pub fn max_outbox_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_outbox_bytes = bytes;
        self
    }

    /// Most messages the receiver holds back while an earlier one is
    /// missing, in messages.
    ///
    /// When it is full, the message with the highest sequence number is
    /// dropped (the sender resends it): the lowest ones are needed first.
    /// 0 drops every out-of-order message. Default: 1024.
    pub fn hold_back_messages(&mut self, messages: usize) -> &mut Self {
        self.hold_back_messages = messages;
        self
    }

    /// Most payload bytes held back, as for
    /// [`hold_back_messages`](Self::hold_back_messages). Default: 16 MiB.
    pub fn hold_back_bytes(&mut self, bytes: usize) -> &mut Self {
        self.hold_back_bytes = bytes;
        self
    }

    /// Most messages accepted from a peer and not yet acknowledged by the
    /// application, in messages (including those being stored).
    ///
    /// This is the receiver's flow control: past it, new messages are not
    /// accepted. They wait in the hold-back buffer while it has room (see
    /// [`hold_back_messages`](Self::hold_back_messages)); the rest are
    /// dropped and the sender resends them after its
    /// [`ack_timeout`](Self::ack_timeout). So a slow application does not
    /// grow memory or storage. Keep it at least [`window`](Self::window).
    /// Must be at least 1. Default: 4096.
    pub fn recv_window(&mut self, messages: usize) -> &mut Self {
        self.recv_window = messages;
        self
    }

    /// Most payload bytes accepted and not yet acknowledged by the
    /// application, as for [`recv_window`](Self::recv_window). A message is
    /// always accepted when nothing else is pending, whatever its size.
    /// Default: 64 MiB.
    pub fn recv_window_bytes(&mut self, bytes: usize) -> &mut Self {
        self.recv_window_bytes = bytes;
        self
    }

    /// When deliveries count as processed: see [`AckMode`].
    /// Default: [`AckMode::Manual`].
    pub fn ack_mode(&mut self, mode: AckMode) -> &mut Self {
        self.ack_mode = mode;
        self
    }

    /// How often the socket's metrics are brought up to date (feature
    /// `metrics`), from a background task that asks the socket's task for
    /// its [`stats`](crate::ReliableSocket::stats). Default: 1 s.
    pub fn metrics_interval(&mut self, every: Duration) -> &mut Self {
        self.metrics_interval = every;
        self
    }

    /// The configured [`AckMode`].
    pub fn get_ack_mode(&self) -> AckMode {
        self.ack_mode
    }

    /// Checks every option against its documented range.
    ///
    /// # Errors
    ///
    /// [`ReliableError::InvalidOptions`] naming the first option out of
    /// range.
    pub fn validate(&self) -> Result<(), ReliableError> {
        let bad = |what| Err(ReliableError::InvalidOptions { what });
        if self.window == 0 {
            return bad("window must be at least 1");
        }
        if self.metrics_interval.is_zero() {
            return bad("metrics_interval must not be zero");
        }
        if self.ack_timeout.is_zero() {
            return bad("ack_timeout must not be zero");
        }
        if self.max_ack_timeout < self.ack_timeout {
            return bad("max_ack_timeout must be at least ack_timeout");
        }
        if self.max_outbox_messages == 0 || self.max_outbox_bytes == 0 {
            return bad("outbox limits must be at least 1");
        }
        if self.recv_window == 0 || self.recv_window_bytes == 0 {
            return bad("receive window limits must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        ReliableOptions::new().validate().unwrap();
        let err = ReliableOptions::new().window(0).validate().unwrap_err();
        assert!(err.to_string().contains("window"), "{err}");
        let err = ReliableOptions::new()
            .max_ack_timeout(Duration::from_millis(1))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("max_ack_timeout"), "{err}");
    }
}
