//! The frame codec: bytes in, [`Frame`]s out, and back.

use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compression::{self, Compression};
use crate::error::WireError;
use crate::frame::{Frame, FrameKind, HEADER_LEN, MAX_REASON_LEN, MAX_TOPIC_LEN, PROTOCOL_VERSION};
use crate::options::WireOptions;

/// Bits 0..=2 of the flags byte: the compression algorithm id.
const COMPRESSION_MASK: u8 = 0b0000_0111;

/// Encoder and decoder of msg frames (after the handshake).
///
/// The codec is sans-IO: [`decode`](Self::decode) takes whatever bytes have
/// arrived and returns a frame once a whole one is there;
/// [`encode`](Self::encode) appends a frame's bytes to a buffer. A driver
/// can call these directly, or use the tokio-util `Decoder`/`Encoder`
/// implementations (feature `codec`) with `Framed`.
///
/// The codec keeps no state between calls besides its [`WireOptions`].
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use msg_wire::{Frame, FrameCodec};
///
/// let mut codec = FrameCodec::new();
/// let mut buf = BytesMut::new();
/// let frame = Frame::Request { id: 7, payload: Bytes::from_static(b"hello") };
/// codec.encode(&frame, &mut buf)?;
/// assert_eq!(codec.decode(&mut buf)?, Some(frame));
/// assert!(buf.is_empty());
/// # Ok::<(), msg_wire::WireError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FrameCodec {
    opts: WireOptions,
}

/// The parts of a header that are known once its 7 bytes have arrived.
#[derive(Clone, Copy, Debug)]
struct Header {
    body_len: usize,
    kind: FrameKind,
    compression: Compression,
}

impl FrameCodec {
    /// A codec with the default [`WireOptions`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec with the given options.
    pub fn with_options(opts: WireOptions) -> Self {
        FrameCodec { opts }
    }

    /// The codec's options.
    pub fn options(&self) -> &WireOptions {
        &self.opts
    }

    /// Decode one frame from the front of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not hold a whole frame yet; the
    /// bytes stay in `src` and the call should be repeated once more have
    /// been read. On success the frame's bytes are removed from `src`, and
    /// its topic and (uncompressed) payload are slices of them, not copies.
    ///
    /// Header fields are checked as soon as they arrive, so garbage and
    /// oversized frames are refused without waiting for (or buffering) a
    /// body. When the header is complete but the body is not, `src` is grown
    /// to hold exactly the rest of the frame, which is at most
    /// `HEADER_LEN + max_frame_size` bytes.
    ///
    /// # Errors
    ///
    /// Any error means the peer is broken or hostile; the connection should
    /// be closed (the state of `src` is then unspecified):
    ///
    /// - [`WireError::FrameTooLarge`] for a body over `max_frame_size`,
    ///   reported once the four length bytes are in;
    /// - [`WireError::UnsupportedVersion`], [`WireError::UnknownKind`],
    ///   [`WireError::UnknownCompression`], [`WireError::ReservedFlags`],
    ///   [`WireError::CompressionUnavailable`] for bad header bytes;
    /// - [`WireError::Malformed`], [`WireError::TopicTooLong`],
    ///   [`WireError::ReasonTooLong`] for a body that does not fit its kind;
    /// - [`WireError::DecompressedTooLarge`] and [`WireError::Decompress`]
    ///   for a bad compressed payload.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let max = self.opts.get_max_frame_size();
        let Some(header) = check_header(src, max)? else {
            // Not even a full header yet. Nothing to reserve: whoever reads
            // into `src` always has room for seven bytes.
            return Ok(None);
        };

        // `body_len <= max <= u32::MAX`, but on a 32-bit target adding the
        // header could still wrap, so the sum is checked.
        let total = HEADER_LEN
            .checked_add(header.body_len)
            .ok_or(WireError::FrameTooLarge {
                len: header.body_len as u64,
                max,
            })?;

        if src.len() < total {
            // The body is still on its way. We know how much is missing and
            // that it is within the limit, but a declared length is only a
            // promise: a peer could declare 64 MiB on each of many
            // connections and then trickle bytes. So the buffer grows with
            // what has actually arrived (at most double it, or 64 KiB more),
            // never past the frame itself: memory follows the bytes the peer
            // really sent, and a large frame still arrives in few reads and
            // few copies (growth is geometric). (`BytesMut::reserve` may
            // double the capacity past the frame; see `reserve_exact`.)
            let step = src.len().max(GROW_STEP);
            reserve_exact(src, total.min(src.len().saturating_add(step)));
            return Ok(None);
        }

        // The whole frame is here. Split it off and freeze it: the topic and
        // payload below are reference-counted views into this allocation,
        // and `src` keeps whatever follows (the next frame's first bytes).
        let mut body = src.split_to(total).freeze();
        body.advance(HEADER_LEN);
        decode_body(header, body, max).map(Some)
    }

    /// Append `frame` to `dst`, compressed with the options' default
    /// compression where that applies.
    ///
    /// See [`encode_with`](Self::encode_with).
    ///
    /// # Errors
    ///
    /// As for [`encode_with`](Self::encode_with).
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        let compression = self.opts.get_compression();
        self.encode_with(frame, compression, dst)
    }

    /// Append `frame` to `dst`, compressing its payload with `compression`
    /// where that applies.
    ///
    /// The payload is compressed only when the frame kind has one, it is at
    /// least `compress_min_size` bytes long, and compressing makes the frame
    /// smaller; otherwise the frame goes out uncompressed. Nothing is
    /// written to `dst` on error.
    ///
    /// # Errors
    ///
    /// - [`WireError::FrameTooLarge`] if the body would exceed
    ///   `max_frame_size` (the peer would refuse it);
    /// - [`WireError::TopicTooLong`] for a topic over 65535 bytes;
    /// - [`WireError::ReasonTooLong`] for a close text over 1024 bytes;
    /// - [`WireError::CompressionUnavailable`] if `compression`'s feature is
    ///   disabled;
    /// - [`WireError::Compress`] if the compressor fails.
    pub fn encode_with(
        &mut self,
        frame: &Frame,
        compression: Compression,
        dst: &mut BytesMut,
    ) -> Result<(), WireError> {
        self.encode_append(frame, compression, dst)
    }

    /// Encode `frame` into an [`EncodedFrame`]: a small header buffer plus
    /// the payload `Bytes` itself.
    ///
    /// An uncompressed payload is not copied. The result is cheap to clone,
    /// so a publisher encodes a message once and hands the same
    /// `EncodedFrame` to every subscriber's writer, which can send it with
    /// one vectored write ([`Buf::chunks_vectored`]). Its bytes are exactly
    /// what [`encode_with`](Self::encode_with) would append.
    ///
    /// # Errors
    ///
    /// As for [`encode_with`](Self::encode_with).
    pub fn encode_parts(
        &self,
        frame: &Frame,
        compression: Compression,
    ) -> Result<EncodedFrame, WireError> {
        let plan = self.plan(frame, compression)?;
        let mut header = BytesMut::with_capacity(plan.header_len);
        write_header(frame, &plan, &mut header);
        Ok(EncodedFrame {
            header: header.freeze(),
            payload: plan.payload,
        })
    }

    /// Appends `frame`, encoded, to `dst`: [`encode_with`](Self::encode_with)
    /// through a shared reference. A caller that collects several small
    /// frames in one buffer hands them on as one
    /// [`EncodedFrame::from_encoded`].
    ///
    /// # Errors
    ///
    /// As for [`encode_with`](Self::encode_with); nothing is written to
    /// `dst` on error.
    pub fn encode_append(
        &self,
        frame: &Frame,
        compression: Compression,
        dst: &mut BytesMut,
    ) -> Result<(), WireError> {
        let plan = self.plan(frame, compression)?;
        dst.reserve(plan.header_len.saturating_add(plan.payload.len()));
        write_header(frame, &plan, dst);
        dst.extend_from_slice(&plan.payload);
        Ok(())
    }

    /// Like [`encode_parts`](Self::encode_parts), with the header written
    /// into `scratch` and split off it: a caller encoding many frames in a
    /// row allocates header space once per `scratch` allocation instead of
    /// once per frame (the headers then share that buffer).
    ///
    /// # Errors
    ///
    /// As for [`encode_with`](Self::encode_with); nothing is written to
    /// `scratch` on error.
    pub fn encode_parts_in(
        &self,
        frame: &Frame,
        compression: Compression,
        scratch: &mut BytesMut,
    ) -> Result<EncodedFrame, WireError> {
        let plan = self.plan(frame, compression)?;
        scratch.clear();
        scratch.reserve(plan.header_len);
        write_header(frame, &plan, scratch);
        Ok(EncodedFrame {
            header: scratch.split().freeze(),
            payload: plan.payload,
        })
    }

    /// Encodes `frame` without touching the heap or any reference count
    /// when it can: a [`Frame::Message`], a [`Frame::Part`] or a
    /// [`Frame::Request`] with id 0 (as DEALER and REQ sockets first encode
    /// theirs) whose payload is under 2 KiB and goes uncompressed (no
    /// `compression`, or a payload under
    /// [`compress_min_size`](WireOptions::compress_min_size)) gets its header
    /// from a static table, and the payload moves into the result. That is
    /// what [`encode_parts`](Self::encode_parts) gives for the same frame.
    ///
    /// # Errors
    ///
    /// The frame, given back, when that does not apply: encode it the
    /// general way, which also reports a payload over the frame limit or an
    /// unavailable compression.
    pub fn encode_small(
        &self,
        frame: Frame,
        compression: Compression,
    ) -> Result<EncodedFrame, Frame> {
        let (header, payload): (&'static [u8], Bytes) = match frame {
            Frame::Message { payload } if self.small(&payload, 0, compression) => {
                (&MESSAGE_HEADERS[payload.len()], payload)
            }
            Frame::Part { payload } if self.small(&payload, 0, compression) => {
                (&PART_HEADERS[payload.len()], payload)
            }
            Frame::Request { id: 0, payload } if self.small(&payload, 8, compression) => {
                (&REQUEST_HEADERS[payload.len()], payload)
            }
            other => return Err(other),
        };
        Ok(EncodedFrame {
            header: Bytes::from_static(header),
            payload,
        })
    }

    /// Whether a `payload` after `fixed` bytes of fixed fields has a static
    /// header: short, uncompressed, and within the frame limit.
    fn small(&self, payload: &Bytes, fixed: usize, compression: Compression) -> bool {
        let len = payload.len();
        len < STATIC_HEADERS
            && (compression == Compression::None || len < self.opts.get_compress_min_size())
            && len + fixed <= self.opts.get_max_frame_size()
    }

    /// Validate `frame`, decide on compression and work out the lengths.
    fn plan(&self, frame: &Frame, compression: Compression) -> Result<Plan, WireError> {
        if !compression.is_available() {
            return Err(WireError::CompressionUnavailable(compression));
        }
        let max = self.opts.get_max_frame_size();

        // Bytes between the 7-byte header and the payload.
        let fixed_len: usize = match frame {
            Frame::Request { .. }
            | Frame::Reply { .. }
            | Frame::Ping { .. }
            | Frame::Pong { .. }
            | Frame::Data { .. }
            | Frame::Ack { .. } => 8,
            Frame::Publish { topic, .. } => {
                check_topic(topic)?;
                // 8 + 2 + at most 65535: no overflow.
                10 + topic.len()
            }
            Frame::Subscribe { topic } | Frame::Unsubscribe { topic } => {
                check_topic(topic)?;
                topic.len()
            }
            Frame::Close { text, .. } => {
                if text.len() > MAX_REASON_LEN {
                    return Err(WireError::ReasonTooLong(text.len()));
                }
                2 + text.len()
            }
            Frame::Message { .. } | Frame::Part { .. } => 0,
        };

        let payload = frame.payload().cloned().unwrap_or_default();
        let plain_body = (fixed_len as u64).saturating_add(payload.len() as u64);

        // Compress only when it can pay off: the kind has a payload, the
        // payload is big enough, and the frame would be acceptable anyway
        // (a payload over the limit is refused by the peer whether or not it
        // shrinks, since it must decompress within the same limit).
        let mut chosen = Compression::None;
        let mut wire_payload = payload.clone();
        if compression != Compression::None
            && frame.kind().has_payload()
            && payload.len() >= self.opts.get_compress_min_size()
            && plain_body <= max as u64
        {
            let packed = compression::compress(compression, &payload)?;
            // Four bytes of original length come with a compressed payload.
            if (packed.len() as u64).saturating_add(4) < payload.len() as u64 {
                chosen = compression;
                wire_payload = packed;
            }
        }

        let orig_len = if chosen == Compression::None {
            None
        } else {
            // `payload.len() <= max <= u32::MAX` was checked above.
            Some(
                u32::try_from(payload.len()).map_err(|_| WireError::FrameTooLarge {
                    len: plain_body,
                    max,
                })?,
            )
        };
        let prefix_len = if orig_len.is_some() { 4 } else { 0 };
        let body_len = (fixed_len as u64)
            .saturating_add(prefix_len as u64)
            .saturating_add(wire_payload.len() as u64);
        if body_len > max as u64 {
            return Err(WireError::FrameTooLarge { len: body_len, max });
        }
        let body_len =
            u32::try_from(body_len).map_err(|_| WireError::FrameTooLarge { len: body_len, max })?;

        Ok(Plan {
            body_len,
            compression: chosen,
            orig_len,
            header_len: HEADER_LEN + fixed_len + prefix_len,
            payload: wire_payload,
        })
    }
}

/// Payload lengths below this have static headers
/// ([`FrameCodec::encode_small`]).
const STATIC_HEADERS: usize = 2048;

/// The uncompressed `Message` frame header for each payload length.
static MESSAGE_HEADERS: [[u8; HEADER_LEN]; STATIC_HEADERS] = headers(FrameKind::Message);

/// The uncompressed `Part` frame header for each payload length.
static PART_HEADERS: [[u8; HEADER_LEN]; STATIC_HEADERS] = headers(FrameKind::Part);

/// The uncompressed `Request` frame header with id 0 (the 7-byte header and
/// the 8-byte id) for each payload length.
static REQUEST_HEADERS: [[u8; HEADER_LEN + 8]; STATIC_HEADERS] = headers(FrameKind::Request);

/// The header of an uncompressed frame of `kind` whose fixed fields (the
/// `N - HEADER_LEN` bytes after the 7-byte header) are all zero, for every
/// payload length below [`STATIC_HEADERS`], as [`write_header`] writes it.
const fn headers<const N: usize>(kind: FrameKind) -> [[u8; N]; STATIC_HEADERS] {
    let mut out = [[0; N]; STATIC_HEADERS];
    let mut len = 0;
    while len < STATIC_HEADERS {
        let body = ((len + N - HEADER_LEN) as u32).to_be_bytes();
        out[len][0] = body[0];
        out[len][1] = body[1];
        out[len][2] = body[2];
        out[len][3] = body[3];
        out[len][4] = PROTOCOL_VERSION;
        out[len][5] = kind.code();
        out[len][6] = Compression::None.id();
        len += 1;
    }
    out
}

/// What [`FrameCodec::plan`] decided for one frame.
struct Plan {
    body_len: u32,
    compression: Compression,
    orig_len: Option<u32>,
    /// Header, fixed fields and (if compressed) original length.
    header_len: usize,
    /// The payload as it goes on the wire (compressed or not).
    payload: Bytes,
}

fn check_topic(topic: &Bytes) -> Result<(), WireError> {
    if topic.len() > MAX_TOPIC_LEN {
        Err(WireError::TopicTooLong(topic.len()))
    } else {
        Ok(())
    }
}

/// Write everything up to the payload: the 7-byte header, the kind's fixed
/// fields and, for a compressed payload, its original length.
fn write_header(frame: &Frame, plan: &Plan, out: &mut impl BufMut) {
    out.put_u32(plan.body_len);
    out.put_u8(PROTOCOL_VERSION);
    out.put_u8(frame.kind().code());
    out.put_u8(plan.compression.id());
    match frame {
        Frame::Request { id, .. } | Frame::Reply { id, .. } => out.put_u64(*id),
        Frame::Publish { topic, seq, .. } => {
            out.put_u64(*seq);
            // Checked by `plan`: the topic fits in a u16.
            out.put_u16(topic.len() as u16);
            out.put_slice(topic);
        }
        Frame::Subscribe { topic } | Frame::Unsubscribe { topic } => out.put_slice(topic),
        Frame::Ping { nonce } | Frame::Pong { nonce } => out.put_u64(*nonce),
        Frame::Close { code, text } => {
            out.put_u16(code.code());
            out.put_slice(text.as_bytes());
        }
        Frame::Data { seq, .. } | Frame::Ack { seq } => out.put_u64(*seq),
        Frame::Message { .. } | Frame::Part { .. } => {}
    }
    if let Some(orig_len) = plan.orig_len {
        out.put_u32(orig_len);
    }
}

/// Check whatever part of the 7-byte header is in `src`.
///
/// Returns `Ok(None)` until all seven bytes are there, but rejects a bad
/// byte as soon as it arrives: the length once four bytes are in, the
/// version at the fifth, the kind at the sixth, the flags at the seventh.
fn check_header(src: &[u8], max: usize) -> Result<Option<Header>, WireError> {
    let Some(&[a, b, c, d]) = src.get(..4) else {
        return Ok(None);
    };
    let declared = u32::from_be_bytes([a, b, c, d]);
    let body_len = usize::try_from(declared)
        .ok()
        .filter(|len| *len <= max)
        .ok_or(WireError::FrameTooLarge {
            len: u64::from(declared),
            max,
        })?;

    let Some(&version) = src.get(4) else {
        return Ok(None);
    };
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }

    let Some(&kind) = src.get(5) else {
        return Ok(None);
    };
    let kind = FrameKind::try_from(kind)?;

    let Some(&flags) = src.get(6) else {
        return Ok(None);
    };
    if flags & !COMPRESSION_MASK != 0 {
        return Err(WireError::ReservedFlags(flags));
    }
    let compression = Compression::from_id(flags & COMPRESSION_MASK)?;
    if compression != Compression::None {
        if !kind.has_payload() {
            return Err(WireError::Malformed(
                "compression flag set on a frame kind without payload",
            ));
        }
        if !compression.is_available() {
            return Err(WireError::CompressionUnavailable(compression));
        }
    }

    Ok(Some(Header {
        body_len,
        kind,
        compression,
    }))
}

/// Grow `src` so that it can hold `total` bytes from its start, allocating
/// no more than that.
///
/// `BytesMut::reserve` is free to double the capacity, which would let a
/// peer make a connection hold up to twice the frame limit. Here we first
/// try to reuse the space in front of the data (`try_reclaim` never
/// allocates) and otherwise move the partial frame into a buffer of exactly
/// the needed size. The copy is what `reserve` would have done anyway when
/// reallocating, and it only covers the bytes of the one incomplete frame.
/// Smallest step by which the decoder grows a buffer for a frame whose body
/// is still arriving.
const GROW_STEP: usize = 64 * 1024;

pub(crate) fn reserve_exact(src: &mut BytesMut, total: usize) {
    if src.capacity() >= total {
        return;
    }
    let additional = total.saturating_sub(src.len());
    if src.try_reclaim(additional) {
        return;
    }
    let mut bigger = BytesMut::with_capacity(total);
    bigger.extend_from_slice(src);
    *src = bigger;
}

/// Parse the body of a frame whose header has been checked.
fn decode_body(header: Header, mut body: Bytes, max: usize) -> Result<Frame, WireError> {
    let frame = match header.kind {
        FrameKind::Request => Frame::Request {
            id: take_u64(&mut body, "request frame shorter than its id")?,
            payload: payload(header.compression, body, max)?,
        },
        FrameKind::Reply => Frame::Reply {
            id: take_u64(&mut body, "reply frame shorter than its id")?,
            payload: payload(header.compression, body, max)?,
        },
        FrameKind::Publish => {
            let seq = take_u64(&mut body, "publish frame shorter than its sequence")?;
            let topic_len = body
                .try_get_u16()
                .map_err(|_| WireError::Malformed("publish frame shorter than its topic length"))?;
            let topic_len = usize::from(topic_len);
            if topic_len > body.len() {
                return Err(WireError::Malformed(
                    "publish topic runs past the frame end",
                ));
            }
            let topic = body.split_to(topic_len);
            Frame::Publish {
                topic,
                seq,
                payload: payload(header.compression, body, max)?,
            }
        }
        FrameKind::Subscribe => Frame::Subscribe {
            topic: topic_body(body)?,
        },
        FrameKind::Unsubscribe => Frame::Unsubscribe {
            topic: topic_body(body)?,
        },
        FrameKind::Ping => Frame::Ping {
            nonce: only_u64(body, "ping body must be exactly 8 bytes")?,
        },
        FrameKind::Pong => Frame::Pong {
            nonce: only_u64(body, "pong body must be exactly 8 bytes")?,
        },
        FrameKind::Close => {
            let code = body
                .try_get_u16()
                .map_err(|_| WireError::Malformed("close frame shorter than its reason code"))?;
            if body.len() > MAX_REASON_LEN {
                return Err(WireError::ReasonTooLong(body.len()));
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| WireError::Malformed("close reason is not valid utf-8"))?
                .to_owned();
            Frame::Close {
                code: code.into(),
                text,
            }
        }
        FrameKind::Data => Frame::Data {
            seq: take_u64(&mut body, "data frame shorter than its sequence")?,
            payload: payload(header.compression, body, max)?,
        },
        FrameKind::Ack => Frame::Ack {
            seq: only_u64(body, "ack body must be exactly 8 bytes")?,
        },
        FrameKind::Message => Frame::Message {
            payload: payload(header.compression, body, max)?,
        },
        FrameKind::Part => Frame::Part {
            payload: payload(header.compression, body, max)?,
        },
    };
    Ok(frame)
}

fn take_u64(body: &mut Bytes, what: &'static str) -> Result<u64, WireError> {
    body.try_get_u64().map_err(|_| WireError::Malformed(what))
}

/// A body that is one u64 and nothing else.
fn only_u64(mut body: Bytes, what: &'static str) -> Result<u64, WireError> {
    let value = take_u64(&mut body, what)?;
    if body.is_empty() {
        Ok(value)
    } else {
        Err(WireError::Malformed(what))
    }
}

fn topic_body(body: Bytes) -> Result<Bytes, WireError> {
    if body.len() > MAX_TOPIC_LEN {
        Err(WireError::TopicTooLong(body.len()))
    } else {
        Ok(body)
    }
}

/// The payload at the end of a body, decompressed if need be.
fn payload(compression: Compression, mut rest: Bytes, max: usize) -> Result<Bytes, WireError> {
    if compression == Compression::None {
        // The common case: a view into the frame, no copy.
        return Ok(rest);
    }
    let orig_len = rest
        .try_get_u32()
        .map_err(|_| WireError::Malformed("compressed payload shorter than its original length"))?;
    // Checked against the limit before anything is allocated for it.
    let orig_len = usize::try_from(orig_len)
        .ok()
        .filter(|len| *len <= max)
        .ok_or(WireError::DecompressedTooLarge {
            len: u64::from(orig_len),
            max,
        })?;
    compression::decompress(compression, &rest, orig_len, max)
}

/// A frame encoded once, ready to be written to any number of connections.
///
/// It is two [`Bytes`]: the header (7-byte frame header, fixed fields and,
/// when compressed, the original payload length) and the payload as it goes
/// on the wire. Cloning is two reference-count increments.
///
/// `EncodedFrame` implements [`Buf`], so a writer can hand it to
/// `AsyncWriteExt::write_all_buf` or gather several frames'
/// [`chunks_vectored`](Buf::chunks_vectored) into one vectored write.
/// Reading through `Buf` consumes the (cloned) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    header: Bytes,
    payload: Bytes,
}

impl EncodedFrame {
    /// Whole frames already encoded back to back (by
    /// [`FrameCodec::encode_append`] or [`FrameCodec::encode_with`]), to be
    /// written as they are: the bytes become the header part and the
    /// payload part is empty. [`with_seq`](Self::with_seq) does not apply to
    /// more than one frame and returns `None` for them.
    pub fn from_encoded(frames: Bytes) -> Self {
        Self {
            header: frames,
            payload: Bytes::new(),
        }
    }

    /// The header part: everything before the payload.
    pub fn header(&self) -> &Bytes {
        &self.header
    }

    /// The payload part, as it goes on the wire (compressed or not).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Number of bytes left to write (both parts).
    pub fn len(&self) -> usize {
        self.header.len().saturating_add(self.payload.len())
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.payload.is_empty()
    }

    /// The remaining bytes as one contiguous buffer (copies both parts,
    /// unless one of them is empty).
    pub fn to_bytes(&self) -> Bytes {
        if self.payload.is_empty() {
            return self.header.clone();
        }
        if self.header.is_empty() {
            return self.payload.clone();
        }
        let mut out = BytesMut::with_capacity(self.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.payload);
        out.freeze()
    }

    /// The two parts, header then payload.
    pub fn into_parts(self) -> (Bytes, Bytes) {
        (self.header, self.payload)
    }

    /// A copy of this frame with its sequence number replaced, sharing the
    /// payload.
    ///
    /// Only the header is rewritten (into `scratch`, so a caller stamping
    /// many copies, one per subscriber, allocates once for all of them): a
    /// publisher encodes and compresses a message once and gives every
    /// subscriber its own consecutive sequence number. Applies to
    /// [`Frame::Publish`] and [`Frame::Data`]; other kinds, and a frame that
    /// was already partly consumed through [`Buf`], are returned unchanged
    /// as `None`.
    pub fn with_seq(&self, seq: u64, scratch: &mut BytesMut) -> Option<EncodedFrame> {
        self.with_field(&[FrameKind::Publish, FrameKind::Data], seq, scratch)
    }

    /// A copy of this frame with its request id replaced, sharing the
    /// payload: a requester encodes (and compresses) a request before it
    /// knows the id, and stamps the id in when it queues the request.
    /// Applies to [`Frame::Request`] and [`Frame::Reply`]; other kinds, and
    /// a frame partly consumed through [`Buf`], give `None`. The header is
    /// rewritten into `scratch`, as for [`with_seq`](Self::with_seq).
    pub fn with_id(&self, id: u64, scratch: &mut BytesMut) -> Option<EncodedFrame> {
        self.with_field(&[FrameKind::Request, FrameKind::Reply], id, scratch)
    }

    /// A copy with the u64 that follows the frame header (a sequence number
    /// or an id) replaced, for a frame of one of `kinds`.
    fn with_field(
        &self,
        kinds: &[FrameKind],
        value: u64,
        scratch: &mut BytesMut,
    ) -> Option<EncodedFrame> {
        // Header layout: length (4), version, kind, flags, then the u64 at
        // bytes 7..15 for every kind this applies to.
        let &[a, b, c, d, _version, kind, ..] = self.header.get(..HEADER_LEN + 8)? else {
            return None;
        };
        if !kinds.iter().any(|k| k.code() == kind) {
            return None;
        }
        // A frame partly consumed through `Buf` no longer starts with its
        // header: its declared length stops adding up.
        let declared = u32::from_be_bytes([a, b, c, d]) as usize;
        if declared != self.len() - HEADER_LEN {
            return None;
        }
        scratch.reserve(self.header.len());
        scratch.extend_from_slice(&self.header[..HEADER_LEN]);
        scratch.put_u64(value);
        scratch.extend_from_slice(&self.header[HEADER_LEN + 8..]);
        Some(EncodedFrame {
            header: scratch.split().freeze(),
            payload: self.payload.clone(),
        })
    }
}

impl Buf for EncodedFrame {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        if self.header.is_empty() {
            &self.payload
        } else {
            &self.header
        }
    }

    /// # Panics
    ///
    /// If `cnt` is larger than [`remaining`](Buf::remaining), like
    /// `Bytes::advance`.
    fn advance(&mut self, cnt: usize) {
        let from_header = cnt.min(self.header.len());
        self.header.advance(from_header);
        self.payload.advance(cnt - from_header);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for part in [&self.header, &self.payload] {
            if part.is_empty() {
                continue;
            }
            let Some(slot) = dst.get_mut(n) else { break };
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}

#[cfg(feature = "codec")]
mod tokio_codec {
    //! tokio-util glue: the inherent methods do all the work.

    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::{EncodedFrame, FrameCodec};
    use crate::error::WireError;
    use crate::frame::Frame;

    impl Decoder for FrameCodec {
        type Item = Frame;
        type Error = WireError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
            FrameCodec::decode(self, src)
        }
    }

    /// Encodes with the options' default compression.
    impl Encoder<Frame> for FrameCodec {
        type Error = WireError;

        fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
            FrameCodec::encode(self, &item, dst)
        }
    }

    /// Encodes with the options' default compression.
    impl Encoder<&Frame> for FrameCodec {
        type Error = WireError;

        fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
            FrameCodec::encode(self, item, dst)
        }
    }

    /// Copies an already encoded frame into the write buffer.
    impl Encoder<EncodedFrame> for FrameCodec {
        type Error = WireError;

        fn encode(&mut self, item: EncodedFrame, dst: &mut BytesMut) -> Result<(), WireError> {
            dst.reserve(item.len());
            dst.extend_from_slice(item.header());
            dst.extend_from_slice(item.payload());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_rejected_byte_by_byte() {
        // Oversized length: refused with only four bytes in.
        let err = check_header(&[0xff, 0xff, 0xff, 0xff], 1024).unwrap_err();
        assert!(matches!(
            err,
            WireError::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1024
            }
        ));
        // Bad version at the fifth byte.
        let err = check_header(&[0, 0, 0, 8, 2], 1024).unwrap_err();
        assert!(matches!(err, WireError::UnsupportedVersion(2)));
        // Bad kind at the sixth.
        let err = check_header(&[0, 0, 0, 8, 1, 0x42], 1024).unwrap_err();
        assert!(matches!(err, WireError::UnknownKind(0x42)));
        // Incomplete but fine so far.
        assert!(check_header(&[0, 0, 0, 8, 1, 6], 1024).unwrap().is_none());
    }

    /// The frames with static headers, with `payload`.
    fn small_frames(payload: &Bytes) -> [Frame; 3] {
        let payload = payload.clone();
        [
            Frame::Message {
                payload: payload.clone(),
            },
            Frame::Part {
                payload: payload.clone(),
            },
            Frame::Request { id: 0, payload },
        ]
    }

    #[test]
    fn small_frames_get_the_header_the_general_path_writes() {
        let mut codec = FrameCodec::new();
        for len in [0, 1, 64, 1000, STATIC_HEADERS - 1] {
            let payload = Bytes::from(vec![9; len]);
            for frame in small_frames(&payload) {
                let general = codec.encode_parts(&frame, Compression::None).unwrap();
                let fast = codec
                    .encode_small(frame.clone(), Compression::None)
                    .unwrap();
                assert_eq!(fast, general, "len {len}, {frame:?}");
                // Below the compression threshold, compression changes nothing.
                #[cfg(feature = "lz4")]
                if len < codec.options().get_compress_min_size() {
                    let fast = codec.encode_small(frame.clone(), Compression::Lz4);
                    assert_eq!(fast.unwrap(), general);
                }
                let mut bytes = BytesMut::new();
                codec
                    .encode_with(&frame, Compression::None, &mut bytes)
                    .unwrap();
                assert_eq!(fast.to_bytes(), bytes.freeze());
            }
        }
    }

    #[test]
    fn other_frames_go_back_for_the_general_path() {
        let codec = FrameCodec::new();
        let big = Bytes::from(vec![1; STATIC_HEADERS]);
        for frame in small_frames(&big) {
            assert_eq!(
                codec.encode_small(frame.clone(), Compression::None),
                Err(frame)
            );
        }
        let small = Bytes::from_static(b"hi");
        for frame in [
            Frame::Request {
                id: 7,
                payload: small.clone(),
            },
            Frame::Reply {
                id: 0,
                payload: small.clone(),
            },
            Frame::Ping { nonce: 0 },
        ] {
            assert_eq!(
                codec.encode_small(frame.clone(), Compression::None),
                Err(frame)
            );
        }
        // Over the frame limit (the id counts): the general path reports it.
        let mut opts = WireOptions::new();
        opts.max_frame_size(10);
        let small_limit = FrameCodec::with_options(opts);
        let request = Frame::Request {
            id: 0,
            payload: Bytes::from_static(b"xyz"),
        };
        assert!(
            small_limit
                .encode_small(request.clone(), Compression::None)
                .is_err()
        );
        assert!(
            small_limit
                .encode_parts(&request, Compression::None)
                .is_err()
        );
        // Worth compressing: not for the table.
        let mut opts = WireOptions::new();
        opts.compress_min_size(16);
        let eager = FrameCodec::with_options(opts);
        let compressible = Frame::Message {
            payload: Bytes::from(vec![0; 1024]),
        };
        assert!(eager.encode_small(compressible, Compression::Zstd).is_err());
    }

    #[test]
    fn reserve_exact_never_doubles() {
        let mut buf = BytesMut::with_capacity(10);
        buf.extend_from_slice(&[1; 10]);
        reserve_exact(&mut buf, 11);
        assert_eq!(buf.capacity(), 11);
        assert_eq!(&buf[..], &[1; 10]);
    }

    #[test]
    fn encoded_frame_buf_walks_both_parts() {
        let mut f = EncodedFrame {
            header: Bytes::from_static(b"abc"),
            payload: Bytes::from_static(b"defg"),
        };
        assert_eq!(f.remaining(), 7);
        {
            let mut slices = [IoSlice::new(&[]); 4];
            assert_eq!(f.chunks_vectored(&mut slices), 2);
            assert_eq!(&*slices[0], b"abc");
            assert_eq!(&*slices[1], b"defg");
        }
        f.advance(2);
        assert_eq!(f.chunk(), b"c");
        f.advance(2);
        assert_eq!(f.chunk(), b"efg");
        assert_eq!(f.to_bytes(), Bytes::from_static(b"efg"));
        f.advance(3);
        assert!(f.is_empty());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(f.chunks_vectored(&mut slices), 0);
    }
}
