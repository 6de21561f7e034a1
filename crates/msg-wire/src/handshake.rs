//! The connection handshake: the client's Hello and the server's answer.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::reserve_exact;
use crate::error::WireError;
use crate::frame::{MAX_REASON_LEN, PROTOCOL_VERSION, Reason};
use crate::options::WireOptions;

/// The four bytes every handshake message starts with: `0x89 'M' 'S' 'G'`.
///
/// The first byte has its high bit set so that a peer speaking a text
/// protocol (HTTP, say) is told apart at once, in the spirit of PNG.
pub const MAGIC: [u8; 4] = [0x89, b'M', b'S', b'G'];

/// Longest identity in a Hello or Accept, in bytes (its length is a `u8`).
pub const MAX_IDENTITY_LEN: usize = u8::MAX as usize;

/// Longest possible handshake answer, in bytes: a Reject with a
/// 1024-byte text.
pub const MAX_ANSWER_LEN: usize = 4 + 1 + 1 + 2 + 2 + MAX_REASON_LEN;

/// Answer status byte: accepted.
const STATUS_ACCEPT: u8 = 0;
/// Answer status byte: rejected.
const STATUS_REJECT: u8 = 1;

/// The kind of socket at one end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum SocketType {
    /// Request side of request/reply.
    Req = 1,
    /// Reply side of request/reply.
    Rep = 2,
    /// Publisher.
    Pub = 3,
    /// Subscriber.
    Sub = 4,
    /// Pipeline sender.
    Push = 5,
    /// Pipeline receiver.
    Pull = 6,
    /// Asynchronous requester.
    Dealer = 7,
    /// Asynchronous replier.
    Router = 8,
    /// Symmetric peer, for example of the reliable layer.
    Peer = 9,
    /// One end of an exclusive pair.
    Pair = 10,
}

impl SocketType {
    /// The wire code of the socket type.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Whether a socket of this type may talk to one of type `peer`.
    ///
    /// The relation is symmetric. Allowed pairs: REQ–REP, REQ–ROUTER,
    /// DEALER–REP, DEALER–ROUTER, DEALER–DEALER, PUB–SUB, PUSH–PULL,
    /// PAIR–PAIR and PEER–PEER.
    pub const fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Req, Rep)
                | (Rep, Req)
                | (Req, Router)
                | (Router, Req)
                | (Dealer, Rep)
                | (Rep, Dealer)
                | (Dealer, Router)
                | (Router, Dealer)
                | (Dealer, Dealer)
                | (Pub, Sub)
                | (Sub, Pub)
                | (Push, Pull)
                | (Pull, Push)
                | (Peer, Peer)
                | (Pair, Pair)
        )
    }

    /// Upper-case name, as used by `Display`: `"REQ"`, `"REP"`, `"PUB"`,
    /// `"SUB"`, `"PUSH"`, `"PULL"`, `"DEALER"`, `"ROUTER"`, `"PEER"` or `"PAIR"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Peer => "PEER",
            SocketType::Pair => "PAIR",
        }
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<u8> for SocketType {
    type Error = WireError;

    /// # Errors
    ///
    /// [`WireError::UnknownSocketType`] for a code no type has.
    fn try_from(code: u8) -> Result<Self, WireError> {
        Ok(match code {
            1 => SocketType::Req,
            2 => SocketType::Rep,
            3 => SocketType::Pub,
            4 => SocketType::Sub,
            5 => SocketType::Push,
            6 => SocketType::Pull,
            7 => SocketType::Dealer,
            8 => SocketType::Router,
            9 => SocketType::Peer,
            10 => SocketType::Pair,
            other => return Err(WireError::UnknownSocketType(other)),
        })
    }
}

impl From<SocketType> for u8 {
    fn from(t: SocketType) -> u8 {
        t.code()
    }
}

/// The client's opening handshake message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks ([`PROTOCOL_VERSION`] when
    /// created with [`Hello::new`]).
    pub version: u8,
    /// The client's socket type.
    pub socket_type: SocketType,
    /// The client's identity, at most 255 bytes; empty for anonymous.
    pub identity: Bytes,
    /// Optional authentication token, at most `max_token_size` bytes. An
    /// empty token is sent as "no token" and decodes as `None`.
    pub token: Option<Bytes>,
}

impl Hello {
    /// A Hello for the current [`PROTOCOL_VERSION`].
    pub fn new(socket_type: SocketType, identity: Bytes, token: Option<Bytes>) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            socket_type,
            identity,
            token,
        }
    }
}

/// The server's answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// The connection is accepted; frames may flow.
    Accept {
        /// Protocol version the server speaks (equal to the client's).
        version: u8,
        /// The server's socket type.
        socket_type: SocketType,
        /// The server's identity, at most 255 bytes.
        identity: Bytes,
    },
    /// The connection is refused; the server closes it after this answer.
    Reject {
        /// Protocol version the server speaks, which tells a client refused
        /// with [`Reason::UnsupportedVersion`] what to speak instead.
        version: u8,
        /// Why.
        code: Reason,
        /// Human-readable detail, at most 1024 bytes of UTF-8.
        text: String,
    },
}

impl Answer {
    /// An acceptance at the current [`PROTOCOL_VERSION`].
    pub fn accept(socket_type: SocketType, identity: Bytes) -> Self {
        Answer::Accept {
            version: PROTOCOL_VERSION,
            socket_type,
            identity,
        }
    }

    /// A rejection at the current [`PROTOCOL_VERSION`].
    pub fn reject(code: Reason, text: impl Into<String>) -> Self {
        Answer::Reject {
            version: PROTOCOL_VERSION,
            code,
            text: text.into(),
        }
    }

    /// The answerer's protocol version.
    pub fn version(&self) -> u8 {
        match self {
            Answer::Accept { version, .. } | Answer::Reject { version, .. } => *version,
        }
    }

    /// Whether the connection was accepted.
    pub fn is_accept(&self) -> bool {
        matches!(self, Answer::Accept { .. })
    }
}

/// Encoder and decoder of the handshake messages.
///
/// Sans-IO like [`FrameCodec`](crate::FrameCodec): the decoders take the
/// bytes read so far and return `Ok(None)` until a whole message is there.
/// Every field is checked as soon as it arrives (the magic byte by byte), so
/// a peer that does not speak this protocol is refused at its first wrong
/// byte, and no more than one maximal message is ever buffered:
/// [`max_hello_len`](Self::max_hello_len) bytes for a Hello,
/// [`MAX_ANSWER_LEN`] for an answer. Bytes after the message (the first
/// frames) stay in the buffer.
///
/// For tokio-util's `Framed` (feature `codec`), wrap it in a
/// [`ServerHandshakeCodec`] or a [`ClientHandshakeCodec`]: a `Decoder` has
/// one item type, and this codec decodes two.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use msg_wire::{Answer, HandshakeCodec, Hello, SocketType};
///
/// let mut hs = HandshakeCodec::new();
/// let mut wire = BytesMut::new();
///
/// // client
/// let hello = Hello::new(SocketType::Req, Bytes::from_static(b"client-1"), None);
/// hs.encode_hello(&hello, &mut wire)?;
///
/// // server
/// let got = hs.decode_hello(&mut wire)?.expect("whole hello");
/// assert!(got.socket_type.is_compatible(SocketType::Rep));
/// hs.encode_answer(&Answer::accept(SocketType::Rep, Bytes::new()), &mut wire)?;
///
/// // client
/// assert!(hs.decode_answer(&mut wire)?.expect("whole answer").is_accept());
/// # Ok::<(), msg_wire::WireError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct HandshakeCodec {
    opts: WireOptions,
}

impl HandshakeCodec {
    /// A codec with the default [`WireOptions`] (4 KiB tokens).
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with the given options; only `max_token_size` matters here.
    pub fn with_options(opts: WireOptions) -> Self {
        HandshakeCodec { opts }
    }

    /// The codec's options.
    pub fn options(&self) -> &WireOptions {
        &self.opts
    }

    /// Longest Hello this codec accepts, in bytes:
    /// `4 + 1 + 1 + 1 + 1 + 255 + 2 + max_token_size`.
    pub fn max_hello_len(&self) -> usize {
        4 + 1 + 1 + 1 + 1 + MAX_IDENTITY_LEN + 2 + self.opts.get_max_token_size()
    }

    /// Decode a client [`Hello`] from the front of `src` (server side).
    ///
    /// Returns `Ok(None)` while the Hello is incomplete.
    ///
    /// # Errors
    ///
    /// All mean "refuse this peer"; see the protocol chapter of the book for
    /// what to send back:
    ///
    /// - [`WireError::BadMagic`] at the first byte that differs from
    ///   [`MAGIC`] (close without answering: the peer does not speak msg);
    /// - [`WireError::UnsupportedVersion`] as soon as the version byte is
    ///   in, if it is not [`PROTOCOL_VERSION`] (answer with a Reject);
    /// - [`WireError::UnknownSocketType`], [`WireError::ReservedFlags`];
    /// - [`WireError::TokenTooLong`] once the token length is in, before the
    ///   token is buffered.
    pub fn decode_hello(&mut self, src: &mut BytesMut) -> Result<Option<Hello>, WireError> {
        if !check_magic(src)? {
            return Ok(None);
        }
        let Some(&version) = src.get(4) else {
            return Ok(None);
        };
        if version != PROTOCOL_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let Some(&socket_type) = src.get(5) else {
            return Ok(None);
        };
        let socket_type = SocketType::try_from(socket_type)?;
        let Some(&flags) = src.get(6) else {
            return Ok(None);
        };
        if flags != 0 {
            return Err(WireError::ReservedFlags(flags));
        }
        let Some(&identity_len) = src.get(7) else {
            return Ok(None);
        };
        let identity_len = usize::from(identity_len);

        // At most 8 + 255: no overflow.
        let token_len_at = 8 + identity_len;
        let Some(&[hi, lo]) = src.get(token_len_at..token_len_at + 2) else {
            // The identity is bounded by its one-byte length, so waiting for
            // it and the token length costs at most 265 bytes.
            reserve_exact(src, token_len_at + 2);
            return Ok(None);
        };
        let token_len = usize::from(u16::from_be_bytes([hi, lo]));
        let max = self.opts.get_max_token_size();
        if token_len > max {
            return Err(WireError::TokenTooLong {
                len: token_len,
                max,
            });
        }

        let total = token_len_at + 2 + token_len;
        if src.len() < total {
            // Everything is validated; the rest is within max_hello_len.
            reserve_exact(src, total);
            return Ok(None);
        }

        let mut msg = src.split_to(total).freeze();
        msg.advance(8);
        let identity = msg.split_to(identity_len);
        msg.advance(2);
        Ok(Some(Hello {
            version,
            socket_type,
            identity,
            token: (!msg.is_empty()).then_some(msg),
        }))
    }

    /// Decode the server's [`Answer`] from the front of `src` (client side).
    ///
    /// Returns `Ok(None)` while the answer is incomplete. A Reject is
    /// decoded whatever version the server announces (its layout is the
    /// same in every version), so a client learns why it was refused.
    ///
    /// # Errors
    ///
    /// - [`WireError::BadMagic`] at the first byte that differs from
    ///   [`MAGIC`];
    /// - [`WireError::UnsupportedVersion`] for an Accept of another version;
    /// - [`WireError::Malformed`] for an unknown status byte or a reject
    ///   text that is not UTF-8;
    /// - [`WireError::UnknownSocketType`], [`WireError::ReservedFlags`],
    ///   [`WireError::ReasonTooLong`].
    pub fn decode_answer(&mut self, src: &mut BytesMut) -> Result<Option<Answer>, WireError> {
        if !check_magic(src)? {
            return Ok(None);
        }
        let Some(&version) = src.get(4) else {
            return Ok(None);
        };
        let Some(&status) = src.get(5) else {
            return Ok(None);
        };
        match status {
            STATUS_ACCEPT => {
                if version != PROTOCOL_VERSION {
                    return Err(WireError::UnsupportedVersion(version));
                }
                let Some(&socket_type) = src.get(6) else {
                    return Ok(None);
                };
                let socket_type = SocketType::try_from(socket_type)?;
                let Some(&flags) = src.get(7) else {
                    return Ok(None);
                };
                if flags != 0 {
                    return Err(WireError::ReservedFlags(flags));
                }
                let Some(&identity_len) = src.get(8) else {
                    return Ok(None);
                };
                let total = 9 + usize::from(identity_len);
                if src.len() < total {
                    reserve_exact(src, total);
                    return Ok(None);
                }
                let mut msg = src.split_to(total).freeze();
                msg.advance(9);
                Ok(Some(Answer::Accept {
                    version,
                    socket_type,
                    identity: msg,
                }))
            }
            STATUS_REJECT => {
                let Some(&[c0, c1, l0, l1]) = src.get(6..10) else {
                    return Ok(None);
                };
                let code = Reason::from(u16::from_be_bytes([c0, c1]));
                let text_len = usize::from(u16::from_be_bytes([l0, l1]));
                if text_len > MAX_REASON_LEN {
                    return Err(WireError::ReasonTooLong(text_len));
                }
                let total = 10 + text_len;
                if src.len() < total {
                    reserve_exact(src, total);
                    return Ok(None);
                }
                let mut msg = src.split_to(total).freeze();
                msg.advance(10);
                let text = std::str::from_utf8(&msg)
                    .map_err(|_| WireError::Malformed("reject reason is not valid utf-8"))?
                    .to_owned();
                Ok(Some(Answer::Reject {
                    version,
                    code,
                    text,
                }))
            }
            _ => Err(WireError::Malformed("unknown handshake answer status")),
        }
    }

    /// Append `hello` to `dst` (client side).
    ///
    /// The version byte is `hello.version` as given, so a test can play an
    /// old or future client. Nothing is written on error.
    ///
    /// # Errors
    ///
    /// [`WireError::IdentityTooLong`] for an identity over 255 bytes,
    /// [`WireError::TokenTooLong`] for a token over `max_token_size`.
    pub fn encode_hello(&self, hello: &Hello, dst: &mut BytesMut) -> Result<(), WireError> {
        check_identity(&hello.identity)?;
        let token = hello.token.as_ref().map_or(&[][..], |t| &t[..]);
        let max = self.opts.get_max_token_size();
        if token.len() > max {
            return Err(WireError::TokenTooLong {
                len: token.len(),
                max,
            });
        }
        dst.reserve(10 + hello.identity.len() + token.len());
        dst.put_slice(&MAGIC);
        dst.put_u8(hello.version);
        dst.put_u8(hello.socket_type.code());
        dst.put_u8(0);
        // Both lengths were checked above to fit their fields.
        dst.put_u8(hello.identity.len() as u8);
        dst.put_slice(&hello.identity);
        dst.put_u16(token.len() as u16);
        dst.put_slice(token);
        Ok(())
    }

    /// Append `answer` to `dst` (server side). Nothing is written on error.
    ///
    /// # Errors
    ///
    /// [`WireError::IdentityTooLong`] for an identity over 255 bytes,
    /// [`WireError::ReasonTooLong`] for a text over 1024 bytes.
    pub fn encode_answer(&self, answer: &Answer, dst: &mut BytesMut) -> Result<(), WireError> {
        match answer {
            Answer::Accept {
                version,
                socket_type,
                identity,
            } => {
                check_identity(identity)?;
                dst.reserve(9 + identity.len());
                dst.put_slice(&MAGIC);
                dst.put_u8(*version);
                dst.put_u8(STATUS_ACCEPT);
                dst.put_u8(socket_type.code());
                dst.put_u8(0);
                dst.put_u8(identity.len() as u8);
                dst.put_slice(identity);
            }
            Answer::Reject {
                version,
                code,
                text,
            } => {
                if text.len() > MAX_REASON_LEN {
                    return Err(WireError::ReasonTooLong(text.len()));
                }
                dst.reserve(10 + text.len());
                dst.put_slice(&MAGIC);
                dst.put_u8(*version);
                dst.put_u8(STATUS_REJECT);
                dst.put_u16(code.code());
                dst.put_u16(text.len() as u16);
                dst.put_slice(text.as_bytes());
            }
        }
        Ok(())
    }
}

/// The server's side of the handshake as one codec: decodes the client's
/// [`Hello`], encodes [`Answer`]s.
///
/// A [`HandshakeCodec`] decodes both messages, each with its own method,
/// because the bytes alone cannot tell a Hello from an Answer. A tokio-util
/// `Decoder` has a single item type, so each side gets its own codec
/// (`Decoder<Item = Hello>` and `Encoder<Answer>` here, the reverse in
/// [`ClientHandshakeCodec`]) that delegates to the [`HandshakeCodec`]
/// methods and their limits.
///
/// With the `codec` feature it plugs into `Framed`, `FramedRead` and
/// `FramedWrite`. Once the handshake is done, `Framed::map_codec` (or
/// `FramedRead::map_decoder`) switches to a [`FrameCodec`](crate::FrameCodec)
/// and keeps the read buffer, so frames the peer sent right behind its
/// handshake message are not lost. At end of stream, a partial Hello left
/// in the buffer is an error ([`WireError::Io`], from tokio-util's default
/// `decode_eof`).
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use msg_wire::{Answer, ClientHandshakeCodec, Hello, ServerHandshakeCodec, SocketType};
///
/// let mut client = ClientHandshakeCodec::default();
/// let mut server = ServerHandshakeCodec::default();
/// let mut wire = BytesMut::new();
///
/// let hello = Hello::new(SocketType::Sub, Bytes::from_static(b"sub-1"), None);
/// client.encode(&hello, &mut wire)?;
/// assert_eq!(server.decode(&mut wire)?, Some(hello));
///
/// server.encode(&Answer::accept(SocketType::Pub, Bytes::new()), &mut wire)?;
/// assert!(client.decode(&mut wire)?.expect("whole answer").is_accept());
/// # Ok::<(), msg_wire::WireError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerHandshakeCodec {
    inner: HandshakeCodec,
}

impl ServerHandshakeCodec {
    /// The server side of `codec`, with its limits.
    pub fn new(codec: HandshakeCodec) -> Self {
        ServerHandshakeCodec { inner: codec }
    }

    /// The underlying codec.
    pub fn handshake(&self) -> &HandshakeCodec {
        &self.inner
    }

    /// Decode the client's [`Hello`]; see [`HandshakeCodec::decode_hello`].
    ///
    /// # Errors
    ///
    /// As for [`HandshakeCodec::decode_hello`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Hello>, WireError> {
        self.inner.decode_hello(src)
    }

    /// Append `answer` to `dst`; see [`HandshakeCodec::encode_answer`].
    ///
    /// # Errors
    ///
    /// As for [`HandshakeCodec::encode_answer`].
    pub fn encode(&self, answer: &Answer, dst: &mut BytesMut) -> Result<(), WireError> {
        self.inner.encode_answer(answer, dst)
    }
}

impl From<HandshakeCodec> for ServerHandshakeCodec {
    fn from(codec: HandshakeCodec) -> Self {
        Self::new(codec)
    }
}

/// The client's side of the handshake as one codec: encodes the [`Hello`],
/// decodes the server's [`Answer`].
///
/// The mirror image of [`ServerHandshakeCodec`], which explains why there
/// are two and how to move on to frames after the handshake.
#[derive(Clone, Debug, Default)]
pub struct ClientHandshakeCodec {
    inner: HandshakeCodec,
}

impl ClientHandshakeCodec {
    /// The client side of `codec`, with its limits.
    pub fn new(codec: HandshakeCodec) -> Self {
        ClientHandshakeCodec { inner: codec }
    }

    /// The underlying codec.
    pub fn handshake(&self) -> &HandshakeCodec {
        &self.inner
    }

    /// Decode the server's [`Answer`]; see [`HandshakeCodec::decode_answer`].
    ///
    /// # Errors
    ///
    /// As for [`HandshakeCodec::decode_answer`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Answer>, WireError> {
        self.inner.decode_answer(src)
    }

    /// Append `hello` to `dst`; see [`HandshakeCodec::encode_hello`].
    ///
    /// # Errors
    ///
    /// As for [`HandshakeCodec::encode_hello`].
    pub fn encode(&self, hello: &Hello, dst: &mut BytesMut) -> Result<(), WireError> {
        self.inner.encode_hello(hello, dst)
    }
}

impl From<HandshakeCodec> for ClientHandshakeCodec {
    fn from(codec: HandshakeCodec) -> Self {
        Self::new(codec)
    }
}

#[cfg(feature = "codec")]
mod tokio_codec {
    //! tokio-util glue: the [`HandshakeCodec`] methods do all the work.

    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::{Answer, ClientHandshakeCodec, Hello, ServerHandshakeCodec};
    use crate::error::WireError;

    /// Decodes the client's Hello.
    impl Decoder for ServerHandshakeCodec {
        type Item = Hello;
        type Error = WireError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Hello>, WireError> {
            ServerHandshakeCodec::decode(self, src)
        }
    }

    /// Encodes the server's answer.
    impl Encoder<Answer> for ServerHandshakeCodec {
        type Error = WireError;

        fn encode(&mut self, item: Answer, dst: &mut BytesMut) -> Result<(), WireError> {
            ServerHandshakeCodec::encode(self, &item, dst)
        }
    }

    /// Encodes the server's answer.
    impl Encoder<&Answer> for ServerHandshakeCodec {
        type Error = WireError;

        fn encode(&mut self, item: &Answer, dst: &mut BytesMut) -> Result<(), WireError> {
            ServerHandshakeCodec::encode(self, item, dst)
        }
    }

    /// Decodes the server's answer.
    impl Decoder for ClientHandshakeCodec {
        type Item = Answer;
        type Error = WireError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Answer>, WireError> {
            ClientHandshakeCodec::decode(self, src)
        }
    }

    /// Encodes the client's Hello.
    impl Encoder<Hello> for ClientHandshakeCodec {
        type Error = WireError;

        fn encode(&mut self, item: Hello, dst: &mut BytesMut) -> Result<(), WireError> {
            ClientHandshakeCodec::encode(self, &item, dst)
        }
    }

    /// Encodes the client's Hello.
    impl Encoder<&Hello> for ClientHandshakeCodec {
        type Error = WireError;

        fn encode(&mut self, item: &Hello, dst: &mut BytesMut) -> Result<(), WireError> {
            ClientHandshakeCodec::encode(self, item, dst)
        }
    }
}

fn check_identity(identity: &Bytes) -> Result<(), WireError> {
    if identity.len() > MAX_IDENTITY_LEN {
        Err(WireError::IdentityTooLong(identity.len()))
    } else {
        Ok(())
    }
}

/// Compare the bytes that have arrived with [`MAGIC`].
///
/// Returns `Ok(true)` once all four are in and right, `Ok(false)` while the
/// ones that are in are right, and an error at the first wrong one.
fn check_magic(src: &[u8]) -> Result<bool, WireError> {
    for (got, want) in src.iter().zip(MAGIC.iter()) {
        if got != want {
            return Err(WireError::BadMagic);
        }
    }
    Ok(src.len() >= MAGIC.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_is_symmetric() {
        let all = [
            SocketType::Req,
            SocketType::Rep,
            SocketType::Pub,
            SocketType::Sub,
            SocketType::Push,
            SocketType::Pull,
            SocketType::Dealer,
            SocketType::Router,
            SocketType::Peer,
            SocketType::Pair,
        ];
        let mut pairs = 0;
        for a in all {
            for b in all {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} {b}");
                pairs += usize::from(a.is_compatible(b));
            }
            assert_eq!(SocketType::try_from(a.code()).unwrap(), a);
        }
        // 6 unordered cross pairs counted twice, plus DEALER–DEALER,
        // PEER–PEER and PAIR–PAIR.
        assert_eq!(pairs, 6 * 2 + 3);
        assert!(!SocketType::Router.is_compatible(SocketType::Router));
        assert!(!SocketType::Req.is_compatible(SocketType::Pub));
        assert_eq!(SocketType::Dealer.to_string(), "DEALER");
    }

    #[test]
    fn magic_is_checked_per_byte() {
        assert!(!check_magic(&[]).unwrap());
        assert!(!check_magic(&[0x89, b'M']).unwrap());
        assert!(check_magic(&[0x89, b'M', b'S', b'G', 9]).unwrap());
        assert!(matches!(check_magic(b"G"), Err(WireError::BadMagic)));
        assert!(matches!(
            check_magic(&[0x89, b'X']),
            Err(WireError::BadMagic)
        ));
    }
}
