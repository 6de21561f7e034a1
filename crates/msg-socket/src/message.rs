//! Messages of one or more parts, and how they go on the wire.

use std::cell::RefCell;
use std::fmt;

use bytes::{Bytes, BytesMut};
use msg_wire::{Compression, EncodedFrame, Frame, FrameCodec, WireError};

/// Most parts one message may have. A peer that sends more has its
/// connection closed; [`send`](crate::PushSocket::send) refuses more.
pub const MAX_PARTS: usize = 1024;

/// A message: one part, or several sent and delivered together.
///
/// Most messages have one part, and a one-part message allocates nothing
/// beyond its [`Bytes`]. A multipart message keeps its parts apart (an
/// envelope and a body, a topic and a payload, a header and a blob), and
/// arrives whole or not at all: a receiver never sees some of its parts
/// without the others. Every message has at least one part (which may be
/// empty).
///
/// On the wire a message of `n` parts is `n - 1` `Part` frames and the
/// frame that carries the last part; together its parts may hold at most
/// [`max_frame_size`](crate::SocketOptions::max_frame_size) bytes, in at
/// most [`MAX_PARTS`] parts.
///
/// ```
/// use msg_socket::Message;
///
/// let one = Message::from("hello");
/// assert_eq!(one.len(), 1);
/// assert_eq!(one, "hello");
///
/// let mut three = Message::from_parts(["envelope", "", "body"]);
/// three.push("trailer");
/// assert_eq!(three.len(), 4);
/// assert_eq!(three.first(), "envelope");
/// assert_eq!(three.last(), "trailer");
/// assert_eq!(three.into_parts()[2], "body");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Message {
    /// Every part but the last, in order.
    head: Vec<Bytes>,
    /// The last part (the only one, for a one-part message).
    last: Bytes,
}

impl Message {
    /// A message of one empty part.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message of these parts, in order; no parts at all make one empty
    /// part.
    pub fn from_parts<I>(parts: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let mut head: Vec<Bytes> = parts.into_iter().map(Into::into).collect();
        let last = head.pop().unwrap_or_default();
        Self { head, last }
    }

    /// A message from its parts as the wire carries them: every part but
    /// the last, and the last.
    pub(crate) fn from_wire(head: Vec<Bytes>, last: Bytes) -> Self {
        Self { head, last }
    }

    /// Appends a part.
    pub fn push(&mut self, part: impl Into<Bytes>) {
        let part = std::mem::replace(&mut self.last, part.into());
        self.head.push(part);
    }

    /// How many parts (at least one).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.head.len() + 1
    }

    /// Whether the message has more than one part.
    pub fn is_multipart(&self) -> bool {
        !self.head.is_empty()
    }

    /// Part `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        match index.cmp(&self.head.len()) {
            std::cmp::Ordering::Less => self.head.get(index),
            std::cmp::Ordering::Equal => Some(&self.last),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// The first part (for a one-part message, its only part).
    pub fn first(&self) -> &Bytes {
        self.head.first().unwrap_or(&self.last)
    }

    /// The last part (for a one-part message, its only part).
    pub fn last(&self) -> &Bytes {
        &self.last
    }

    /// The parts, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> {
        self.into_iter()
    }

    /// Bytes in all parts together.
    pub fn size(&self) -> usize {
        self.head.iter().map(Bytes::len).sum::<usize>() + self.last.len()
    }

    /// Takes the parts out, in order.
    pub fn into_parts(self) -> Vec<Bytes> {
        let mut parts = self.head;
        parts.push(self.last);
        parts
    }

    /// Takes the only part out of a one-part message; the message back
    /// otherwise.
    ///
    /// # Errors
    ///
    /// The message itself when it has several parts.
    pub fn into_single(self) -> Result<Bytes, Self> {
        if self.head.is_empty() {
            Ok(self.last)
        } else {
            Err(self)
        }
    }

    /// Removes and returns the first part; a one-part message is left with
    /// one empty part. For taking an envelope off the front.
    pub fn pop_front(&mut self) -> Bytes {
        if self.head.is_empty() {
            std::mem::take(&mut self.last)
        } else {
            self.head.remove(0)
        }
    }

    /// Puts `part` in front of the others. For adding an envelope.
    pub fn push_front(&mut self, part: impl Into<Bytes>) {
        self.head.insert(0, part.into());
    }

    /// Encodes the message for the wire: a `Part` frame for every part but
    /// the last, and `last` made into the final frame (a request, reply or
    /// message) by `frame`.
    pub(crate) fn encode(
        self,
        codec: &FrameCodec,
        compression: Compression,
        frame: impl FnOnce(Bytes) -> Frame,
    ) -> Result<Encoded, WireError> {
        let max = codec.options().get_max_frame_size();
        if self.len() > MAX_PARTS {
            return Err(WireError::TooManyParts {
                parts: self.len(),
                max: MAX_PARTS,
            });
        }
        let size = self.size();
        if size > max {
            return Err(WireError::FrameTooLarge {
                len: size as u64,
                max,
            });
        }
        // The parts move into their frames: a one-part message costs no
        // reference-count traffic here.
        let mut head = Vec::with_capacity(self.head.len());
        for payload in self.head {
            head.push(encode_frame(codec, Frame::Part { payload }, compression)?);
        }
        let last = encode_frame(codec, frame(self.last), compression)?;
        Ok(Encoded { head, last })
    }
}

/// Bytes of header space a thread takes at a time for the frames it
/// encodes: one allocation serves dozens of headers. A header kept (a
/// message parked, a frame queued) keeps its chunk alive, so chunks stay
/// small.
const HEADER_CHUNK: usize = 1024;

/// A header of at most this many bytes takes what is left of the current
/// chunk; a longer one (a long topic) starts a chunk of its own.
const HEADER_ROOM: usize = 64;

thread_local! {
    /// The current header chunk of this thread.
    static HEADERS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Encodes `frame`: with a static header where the codec has one
/// ([`FrameCodec::encode_small`]), otherwise with its header in this
/// thread's header chunk, not an allocation of its own.
fn encode_frame(
    codec: &FrameCodec,
    frame: Frame,
    compression: Compression,
) -> Result<EncodedFrame, WireError> {
    let frame = match codec.encode_small(frame, compression) {
        Ok(small) => return Ok(small),
        Err(frame) => frame,
    };
    HEADERS
        .try_with(|chunk| {
            let mut chunk = chunk.borrow_mut();
            if chunk.capacity() < HEADER_ROOM {
                *chunk = BytesMut::with_capacity(HEADER_CHUNK);
            }
            codec.encode_parts_in(&frame, compression, &mut chunk)
        })
        // The thread is exiting and its chunk is gone.
        .unwrap_or_else(|_| codec.encode_parts(&frame, compression))
}

/// A message encoded for the wire: the frames of its parts, queued on one
/// connection together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The `Part` frames of every part but the last.
    pub(crate) head: Vec<EncodedFrame>,
    /// The frame with the last part.
    pub(crate) last: EncodedFrame,
}

impl Encoded {
    /// Frames it takes on a connection.
    pub(crate) fn frames(&self) -> usize {
        self.head.len() + 1
    }

    /// Bytes it takes on a connection.
    pub(crate) fn len(&self) -> usize {
        self.head.iter().map(EncodedFrame::len).sum::<usize>() + self.last.len()
    }

    /// Its frames in order, moved out.
    pub(crate) fn into_frames(self) -> impl Iterator<Item = EncodedFrame> {
        self.head.into_iter().chain(std::iter::once(self.last))
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Message {
    type Item = &'a Bytes;
    type IntoIter = std::iter::Chain<std::slice::Iter<'a, Bytes>, std::iter::Once<&'a Bytes>>;

    fn into_iter(self) -> Self::IntoIter {
        self.head.iter().chain(std::iter::once(&self.last))
    }
}

impl<T: Into<Bytes>> FromIterator<T> for Message {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::from_parts(iter)
    }
}

impl From<Message> for Vec<Bytes> {
    fn from(message: Message) -> Self {
        message.into_parts()
    }
}

impl<T: Into<Bytes>, const N: usize> From<[T; N]> for Message {
    fn from(parts: [T; N]) -> Self {
        Self::from_parts(parts)
    }
}

impl From<Vec<Bytes>> for Message {
    fn from(parts: Vec<Bytes>) -> Self {
        Self::from_parts(parts)
    }
}

macro_rules! one_part_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Message {
            fn from(part: $t) -> Self {
                Self { head: Vec::new(), last: part.into() }
            }
        }
    )*};
}

one_part_from!(
    Bytes,
    bytes::BytesMut,
    Vec<u8>,
    String,
    &'static str,
    &'static [u8],
    Box<[u8]>
);

/// A one-part message equals the bytes of its part.
impl PartialEq<[u8]> for Message {
    fn eq(&self, other: &[u8]) -> bool {
        self.head.is_empty() && self.last == other
    }
}

impl PartialEq<str> for Message {
    fn eq(&self, other: &str) -> bool {
        *self == *other.as_bytes()
    }
}

impl PartialEq<&str> for Message {
    fn eq(&self, other: &&str) -> bool {
        *self == *other.as_bytes()
    }
}

impl PartialEq<&[u8]> for Message {
    fn eq(&self, other: &&[u8]) -> bool {
        *self == **other
    }
}

/// A single-part message equals its one part.
impl PartialEq<Bytes> for Message {
    fn eq(&self, other: &Bytes) -> bool {
        *self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msg_wire::WireOptions;

    #[test]
    fn one_part_messages_keep_nothing_on_the_side() {
        let m = Message::from("x");
        assert!(!m.is_multipart());
        assert_eq!(m.head.capacity(), 0);
        assert_eq!(m.into_single().unwrap(), "x");
    }

    #[test]
    fn parts_keep_their_order_through_every_accessor() {
        let mut m = Message::from_parts(["a", "b"]);
        m.push("c");
        m.push_front("z");
        let parts: Vec<&Bytes> = m.iter().collect();
        assert_eq!(parts, ["z", "a", "b", "c"]);
        assert_eq!(
            (m.get(0).unwrap(), m.get(3).unwrap()),
            (&"z".into(), &"c".into())
        );
        assert!(m.get(4).is_none());
        assert_eq!(m.size(), 4);
        assert_eq!(m.pop_front(), "z");
        assert_eq!(m.clone().into_single().unwrap_err(), m);
        assert_eq!(Message::from_parts(Vec::<Bytes>::new()), Message::new());
    }

    #[test]
    fn encoding_makes_one_frame_per_part_and_checks_the_limits() {
        let codec = FrameCodec::with_options({
            let mut o = WireOptions::default();
            o.max_frame_size(100);
            o
        });
        let m = Message::from_parts(["ab", "", "cde"]);
        let e = m
            .encode(&codec, Compression::None, |payload| Frame::Message {
                payload,
            })
            .unwrap();
        assert_eq!(e.frames(), 3);
        assert_eq!(
            e.clone()
                .into_frames()
                .map(|f| f.payload().len())
                .sum::<usize>(),
            5
        );
        let too_big = Message::from_parts([vec![0u8; 60], vec![0u8; 60]]);
        assert!(matches!(
            too_big.encode(&codec, Compression::None, |payload| Frame::Message {
                payload
            }),
            Err(WireError::FrameTooLarge { .. })
        ));
        let too_many = Message::from_parts(vec![Bytes::new(); MAX_PARTS + 1]);
        assert!(
            too_many
                .encode(&codec, Compression::None, |payload| Frame::Message {
                    payload
                })
                .is_err()
        );
    }
}
