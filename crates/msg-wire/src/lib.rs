//! The wire protocol of msg: frames, the connection handshake, payload
//! compression and every size limit, as a sans-IO library.
//!
//! Nothing here does I/O, spawns a task or reads a clock. Decoders take the
//! bytes read so far (`&mut BytesMut`) and return `Ok(None)` until a whole
//! message is there; encoders append to a buffer or produce an
//! [`EncodedFrame`] that can be shared between connections. The socket
//! drivers in `msg-socket` own the streams and call in here.
//!
//! Decoding keeps three outcomes apart:
//!
//! - `Ok(None)`: incomplete, read more;
//! - `Ok(Some(_))`: a message, its bytes removed from the buffer;
//! - `Err(_)`: the peer sent something unacceptable; close that connection
//!   (after telling the peer [`WireError::reason`] where possible).
//!
//! Nothing a peer sends can make a decoder panic or buffer more than the
//! configured limits: declared lengths are checked against
//! [`WireOptions`] before any memory is reserved for them, and compressed
//! payloads are decompressed into a buffer of exactly the declared,
//! already-checked size.
//!
//! # Feature flags
//!
//! All are on by default.
//!
//! - `codec`: tokio-util `Decoder` and `Encoder` implementations for
//!   [`FrameCodec`] (`Encoder<Frame>`, `Encoder<&Frame>` and
//!   `Encoder<EncodedFrame>`), [`ServerHandshakeCodec`] (decodes [`Hello`],
//!   encodes [`Answer`]) and [`ClientHandshakeCodec`] (the reverse), so they
//!   plug into `Framed`. The types exist without the feature; only the trait
//!   implementations need it. The core never needs tokio.
//! - `gzip`, `zstd`, `snappy`, `lz4`: the compression algorithms. A disabled
//!   algorithm keeps its [`Compression`] variant and id; encoding with it,
//!   or receiving a frame compressed with it, is
//!   [`WireError::CompressionUnavailable`]. Turning features off never
//!   changes a public type.
//!
//! # Handshake
//!
//! The client speaks first. All integers are big-endian.
//!
//! ```text
//! Hello (client -> server)
//! +------+------+------+------+-------+-------+-------+-------+----------+---------+---------+
//! | 0x89 | 'M'  | 'S'  | 'G'  |version|socket | flags | id len| identity |token len|  token  |
//! |      |      |      |      |  u8   |type u8| u8 = 0|  u8   | id len B |   u16   |token len|
//! +------+------+------+------+-------+-------+-------+-------+----------+---------+---------+
//!
//! Answer (server -> client), accept
//! +------+------+------+------+-------+-------+-------+-------+-------+----------+
//! | 0x89 | 'M'  | 'S'  | 'G'  |version|status |socket | flags | id len| identity |
//! |      |      |      |      |  u8   | u8 = 0|type u8| u8 = 0|  u8   | id len B |
//! +------+------+------+------+-------+-------+-------+-------+-------+----------+
//!
//! Answer (server -> client), reject
//! +------+------+------+------+-------+-------+-----------+----------+------------+
//! | 0x89 | 'M'  | 'S'  | 'G'  |version|status |reason code| text len |    text    |
//! |      |      |      |      |  u8   | u8 = 1|    u16    |   u16    | UTF-8, len |
//! +------+------+------+------+-------+-------+-----------+----------+------------+
//! ```
//!
//! # Frames
//!
//! After the handshake both sides send frames: a 7-byte header, then a body
//! of `body len` bytes.
//!
//! ```text
//!  0               4       5       6       7
//! +---------------+-------+-------+-------+---------------------------+
//! | body len u32  |version| kind  | flags | body (body len bytes)     |
//! +---------------+-------+-------+-------+---------------------------+
//!
//! flags:  7 6 5 4 3 2 1 0
//!        +-+-+-+-+-+-+-+-+
//!        |reserved |comp |   comp: 0 none, 1 gzip, 2 zstd, 3 snappy, 4 lz4
//!        +-+-+-+-+-+-+-+-+   reserved bits must be zero
//! ```
//!
//! The body is the kind's fixed fields, then (for kinds that have one) the
//! payload:
//!
//! ```text
//! Request     0x01  | request id u64 | payload ...
//! Reply       0x02  | request id u64 | payload ...
//! Publish     0x03  | sequence u64 | topic len u16 | topic | payload ...
//! Subscribe   0x04  | topic (rest of body, <= 65535 bytes)
//! Unsubscribe 0x05  | topic (rest of body, <= 65535 bytes)
//! Ping        0x06  | nonce u64
//! Pong        0x07  | nonce u64
//! Close       0x08  | reason code u16 | reason text (UTF-8, rest of body, <= 1024 bytes)
//! Data        0x09  | sequence u64 | payload ...
//! Ack         0x0A  | sequence u64
//! Message     0x0B  | payload ...
//! Part        0x0C  | payload ...
//! ```
//!
//! A multipart message is its parts before the last as Part frames, then
//! the last in the pattern's own frame (Message, Request or Reply), back to
//! back on one connection; see the book's protocol chapter for its limits.
//!
//! A compressed payload (flags `comp` not 0, only allowed on the kinds with
//! a payload) is the original length, then the compressed bytes:
//!
//! ```text
//! +-------------------+---------------------------------+
//! | original len u32  | compressed bytes ...            |
//! +-------------------+---------------------------------+
//! ```
//!
//! Both `body len` and `original len` must be at most `max_frame_size`
//! (64 MiB by default, see [`WireOptions::max_frame_size`]).
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use msg_wire::{Compression, Frame, FrameCodec};
//!
//! let mut codec = FrameCodec::new();
//! let frame = Frame::Publish {
//!     topic: Bytes::from_static(b"prices.eur"),
//!     seq: 1,
//!     payload: Bytes::from(vec![b'x'; 4096]),
//! };
//!
//! // Encode once, share with every subscriber.
//! let encoded = codec.encode_parts(&frame, Compression::None)?;
//! let for_another_subscriber = encoded.clone();
//!
//! let mut wire = BytesMut::from(&encoded.to_bytes()[..]);
//! assert_eq!(codec.decode(&mut wire)?, Some(frame));
//! # drop(for_another_subscriber);
//! # Ok::<(), msg_wire::WireError>(())
//! ```

mod codec;
pub mod compression;
mod error;
mod frame;
mod handshake;
mod options;

pub use codec::{EncodedFrame, FrameCodec};
pub use compression::Compression;
pub use error::WireError;
pub use frame::{
    Frame, FrameKind, HEADER_LEN, MAX_REASON_LEN, MAX_TOPIC_LEN, PROTOCOL_VERSION, Reason,
};
pub use handshake::{
    Answer, ClientHandshakeCodec, HandshakeCodec, Hello, MAGIC, MAX_ANSWER_LEN, MAX_IDENTITY_LEN,
    ServerHandshakeCodec, SocketType,
};
pub use options::{
    DEFAULT_COMPRESS_MIN_SIZE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_TOKEN_SIZE,
    MAX_TOKEN_SIZE_LIMIT, WireOptions,
};
