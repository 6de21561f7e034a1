//! The seam between the reliable layer and whatever carries its frames.

use std::future::Future;

use msg_wire::Frame;

use crate::error::ReliableError;
use crate::peer::PeerId;

/// What a [`Link`] reports, from [`Link::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// A connection to the peer is established (again). Frames received
    /// from the peer after this belong to it; the reliable layer resends
    /// everything unacknowledged.
    Up(PeerId),
    /// The connection to the peer is gone; frames sent on it may have been
    /// lost.
    Down(PeerId),
    /// A frame from the peer.
    Frame {
        /// The sender.
        peer: PeerId,
        /// The frame (`Data` or `Ack`).
        frame: Frame,
    },
}

/// A way to exchange frames with peers by their stable identity: msg's
/// own sockets and transports, or a network of your own.
///
/// The reliable layer does not need the link to be reliable: it numbers,
/// acknowledges and retransmits on its own, and drops duplicates. It does
/// need to know when connections come and go ([`LinkEvent::Up`] and
/// [`LinkEvent::Down`]), to resend right away instead of after a timeout.
/// The peer identity must be authenticated by the link if peers are not
/// trusted: the reliable layer believes it.
///
/// Both methods take `&self` so a driver can wait for incoming events and
/// send at the same time; implementations use channels or locks inside.
/// The [`ReliableSocket`](crate::ReliableSocket) driver keeps one `recv`
/// future alive until it completes (it never drops one half-way), and
/// runs at most one `send` per peer at a time, in order.
///
/// Report [`LinkEvent::Up`] for a peer before expecting anything to be
/// sent to it: nothing is transmitted to a peer whose link is not up.
pub trait Link: Send + Sync + 'static {
    /// Sends `frame` to `peer`, waiting while the link is congested
    /// (backpressure).
    ///
    /// # Errors
    ///
    /// A [`ReliableError`] (typically [`ReliableError::Link`]) when the peer
    /// is not connected or the connection failed. The frame is then lost,
    /// which the reliable layer recovers from.
    fn send(
        &self,
        peer: &PeerId,
        frame: Frame,
    ) -> impl Future<Output = Result<(), ReliableError>> + Send;

    /// Sends `frames` to `peer`, in order: what the driver calls when it has
    /// several frames for one peer. The default sends them one by one with
    /// [`send`](Self::send); override it when a batch is cheaper.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), for the first frame that failed; the frames
    /// after it are dropped too (the reliable layer resends them).
    fn send_batch(
        &self,
        peer: &PeerId,
        frames: Vec<Frame>,
    ) -> impl Future<Output = Result<(), ReliableError>> + Send {
        async move {
            for frame in frames {
                self.send(peer, frame).await?;
            }
            Ok(())
        }
    }

    /// The next event: a peer came up or went down, or a frame arrived.
    /// `None` when the link is closed for good.
    fn recv(&self) -> impl Future<Output = Option<LinkEvent>> + Send;
}
