//! Stable peer identities.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::ReliableError;

/// The stable identity of a peer of the reliable layer.
///
/// Unlike a connection id it survives reconnects and restarts: sequence
/// numbers, outboxes and acceptance watermarks are kept per `PeerId`. It is
/// the identity a peer announces in the msg handshake, so it is 1 to
/// [`PeerId::MAX_LEN`] bytes long (empty means anonymous there, and an
/// anonymous peer cannot have a durable conversation). Any bytes are
/// allowed; [`Display`](fmt::Display) shows non-printable ones escaped.
///
/// ```
/// use msg_reliable::PeerId;
///
/// let id: PeerId = "orders-eu-1".parse()?;
/// assert_eq!(id.as_bytes(), b"orders-eu-1");
/// assert!(PeerId::new(vec![0u8; 256]).is_err());
/// # Ok::<(), msg_reliable::ReliableError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Bytes);

impl PeerId {
    /// Longest identity, in bytes: the handshake carries its length in one
    /// byte.
    pub const MAX_LEN: usize = msg_wire::MAX_IDENTITY_LEN;

    /// A peer id from its bytes.
    ///
    /// # Errors
    ///
    /// [`ReliableError::InvalidPeerId`] when `id` is empty or longer than
    /// [`PeerId::MAX_LEN`] bytes.
    pub fn new(id: impl Into<Bytes>) -> Result<Self, ReliableError> {
        let id = id.into();
        if id.is_empty() {
            return Err(ReliableError::InvalidPeerId { len: 0 });
        }
        if id.len() > Self::MAX_LEN {
            return Err(ReliableError::InvalidPeerId { len: id.len() });
        }
        Ok(Self(id))
    }

    /// The identity's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The identity as [`Bytes`] (a cheap clone).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

impl FromStr for PeerId {
    type Err = ReliableError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<&str> for PeerId {
    type Error = ReliableError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<Bytes> for PeerId {
    type Error = ReliableError;

    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        Self::new(b)
    }
}

impl AsRef<[u8]> for PeerId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_rejects_empty_and_oversized() {
        assert!(matches!(
            PeerId::new(Bytes::new()),
            Err(ReliableError::InvalidPeerId { len: 0 })
        ));
        assert!(PeerId::new(vec![b'a'; 255]).is_ok());
        assert!(matches!(
            PeerId::new(vec![b'a'; 256]),
            Err(ReliableError::InvalidPeerId { len: 256 })
        ));
    }

    #[test]
    fn peer_id_display_escapes_binary() {
        let id = PeerId::new(vec![b'a', 0, 0xff]).unwrap();
        assert_eq!(id.to_string(), "a\\x00\\xff");
    }
}
