//! Garbage, wrong versions and oversized fields in the handshake are
//! refused early, and arbitrary input never panics, over-buffers or makes a
//! decoder allocate past its documented limits.

use bytes::{BufMut, Bytes, BytesMut};
use msg_wire::{
    Answer, HandshakeCodec, Hello, MAGIC, MAX_ANSWER_LEN, MAX_REASON_LEN, Reason, SocketType,
    WireError, WireOptions,
};

use crate::common::alloc::{self, peak_during};
use proptest::prelude::*;

fn hello_prefix(version: u8, socket_type: u8, flags: u8, identity: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.extend_from_slice(&MAGIC);
    b.put_u8(version);
    b.put_u8(socket_type);
    b.put_u8(flags);
    b.put_u8(identity.len() as u8);
    b.extend_from_slice(identity);
    b
}

#[test]
fn bad_magic_is_refused_at_the_first_byte() {
    let mut hs = HandshakeCodec::new();
    for garbage in [
        &b"G"[..],
        b"GET / HTTP/1.1\r\n",
        &[0x00],
        &[0x89, b'm'],
        &[0x89, b'M', b'S', b'X'],
    ] {
        let mut src = BytesMut::from(garbage);
        assert!(
            matches!(hs.decode_hello(&mut src), Err(WireError::BadMagic)),
            "{garbage:?}"
        );
        let mut src = BytesMut::from(garbage);
        assert!(
            matches!(hs.decode_answer(&mut src), Err(WireError::BadMagic)),
            "{garbage:?}"
        );
    }
    // A correct prefix is just incomplete.
    let mut src = BytesMut::from(&MAGIC[..3]);
    assert_eq!(hs.decode_hello(&mut src).unwrap(), None);
    assert_eq!(WireError::BadMagic.reason(), Reason::ProtocolError);
}

#[test]
fn wrong_version_hello_is_refused_right_after_the_version_byte() {
    let mut hs = HandshakeCodec::new();
    let mut src = BytesMut::from(&MAGIC[..]);
    src.put_u8(2);
    let err = hs.decode_hello(&mut src).unwrap_err();
    assert!(matches!(err, WireError::UnsupportedVersion(2)));
    assert_eq!(err.reason(), Reason::UnsupportedVersion);
    assert_eq!(
        err.to_string(),
        "unsupported protocol version 2 (this side speaks version 1)"
    );

    // The server can still answer in a way an old or new client reads.
    let mut out = BytesMut::new();
    hs.encode_answer(
        &Answer::reject(err.reason(), "this server speaks version 1"),
        &mut out,
    )
    .unwrap();
    match hs.decode_answer(&mut out).unwrap() {
        Some(Answer::Reject {
            version: 1,
            code: Reason::UnsupportedVersion,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn accept_of_another_version_is_refused() {
    let mut src = BytesMut::from(&MAGIC[..]);
    src.extend_from_slice(&[7, 0]);
    let err = HandshakeCodec::new().decode_answer(&mut src).unwrap_err();
    assert!(matches!(err, WireError::UnsupportedVersion(7)), "{err:?}");
    assert!(err.to_string().contains("version 7"), "{err}");
}

#[test]
fn token_too_long_is_refused_before_buffering_it() {
    let mut hs = HandshakeCodec::new(); // 4096 max
    let mut src = hello_prefix(1, 1, 0, b"me");
    src.put_u16(4097);
    let cap = src.capacity();
    let (result, peak) = peak_during(|| hs.decode_hello(&mut src));
    let err = result.unwrap_err();
    assert_eq!(peak, 0, "nothing is allocated for a refused token");
    assert!(matches!(
        err,
        WireError::TokenTooLong {
            len: 4097,
            max: 4096
        }
    ));
    assert_eq!(src.capacity(), cap);

    let hello = Hello::new(SocketType::Req, Bytes::new(), Some(vec![0; 4097].into()));
    assert!(matches!(
        hs.encode_hello(&hello, &mut BytesMut::new()),
        Err(WireError::TokenTooLong {
            len: 4097,
            max: 4096
        })
    ));
}

#[test]
fn unknown_socket_type_and_flags_are_refused() {
    let mut hs = HandshakeCodec::new();
    for t in [0u8, 11, 200] {
        let mut src = hello_prefix(1, t, 0, b"");
        assert!(
            matches!(hs.decode_hello(&mut src), Err(WireError::UnknownSocketType(x)) if x == t)
        );
    }
    let mut src = hello_prefix(1, 1, 0x80, b"");
    assert!(matches!(
        hs.decode_hello(&mut src),
        Err(WireError::ReservedFlags(0x80))
    ));

    let mut src = BytesMut::from(&MAGIC[..]);
    src.extend_from_slice(&[1, 0, 2, 4]);
    assert!(matches!(
        hs.decode_answer(&mut src),
        Err(WireError::ReservedFlags(4))
    ));
}

#[test]
fn bad_answers_are_refused() {
    let mut hs = HandshakeCodec::new();
    // Unknown status.
    let mut src = BytesMut::from(&MAGIC[..]);
    src.extend_from_slice(&[1, 2]);
    assert!(matches!(
        hs.decode_answer(&mut src),
        Err(WireError::Malformed(_))
    ));
    // Reject text too long, refused as soon as its length is in.
    let mut src = BytesMut::from(&MAGIC[..]);
    src.extend_from_slice(&[1, 1, 0, 1]);
    src.put_u16(1025);
    assert!(matches!(
        hs.decode_answer(&mut src),
        Err(WireError::ReasonTooLong(1025))
    ));
    // Reject text not UTF-8.
    let mut src = BytesMut::from(&MAGIC[..]);
    src.extend_from_slice(&[1, 1, 0, 1, 0, 2, 0xC3, 0x28]);
    assert!(matches!(
        hs.decode_answer(&mut src),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn encoder_limits() {
    let hs = HandshakeCodec::new();
    let hello = Hello::new(SocketType::Req, vec![0; 256].into(), None);
    assert!(matches!(
        hs.encode_hello(&hello, &mut BytesMut::new()),
        Err(WireError::IdentityTooLong(256))
    ));
    assert!(matches!(
        hs.encode_answer(
            &Answer::accept(SocketType::Rep, vec![0; 256].into()),
            &mut BytesMut::new()
        ),
        Err(WireError::IdentityTooLong(256))
    ));
    assert!(matches!(
        hs.encode_answer(
            &Answer::reject(Reason::Normal, "x".repeat(1025)),
            &mut BytesMut::new()
        ),
        Err(WireError::ReasonTooLong(1025))
    ));
}

#[test]
fn every_strict_prefix_is_incomplete() {
    let mut hs = HandshakeCodec::new();
    let mut wire = BytesMut::new();
    hs.encode_hello(
        &Hello::new(SocketType::Pub, "pub-1".into(), Some("secret".into())),
        &mut wire,
    )
    .unwrap();
    for n in 0..wire.len() {
        let mut src = BytesMut::from(&wire[..n]);
        assert_eq!(hs.decode_hello(&mut src).unwrap(), None, "prefix {n}");
        assert_eq!(src.len(), n, "nothing consumed");
    }
}

const STEP: usize = 64;

/// Mostly-valid handshake bytes with a few overwrites, or plain noise.
fn hostile(valid: BytesMut) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4).prop_map(
            move |edits| {
                let mut b = valid.to_vec();
                for (at, v) in edits {
                    let i = at.index(b.len());
                    b[i] = v;
                }
                b
            }
        ),
    ]
}

fn valid_hello() -> BytesMut {
    let mut b = BytesMut::new();
    HandshakeCodec::new()
        .encode_hello(
            &Hello::new(
                SocketType::Req,
                vec![b'i'; 40].into(),
                Some(vec![b't'; 300].into()),
            ),
            &mut b,
        )
        .unwrap();
    b
}

fn valid_answer() -> BytesMut {
    let mut b = BytesMut::new();
    HandshakeCodec::new()
        .encode_answer(
            &Answer::reject(Reason::AuthRejected, "r".repeat(300)),
            &mut b,
        )
        .unwrap();
    b
}

/// Feeds `data` in `chunk`-sized reads into a buffer that only grows by
/// STEP bytes when full, running `decode` after each read, and checks the
/// buffer never exceeds `bound` and no decode call allocates more than
/// `alloc_bound` bytes (counted by the allocator).
fn run<T>(
    data: &[u8],
    chunk: usize,
    bound: usize,
    alloc_bound: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, WireError>,
) {
    let mut src = BytesMut::with_capacity(STEP);
    let mut rest = data;
    while !rest.is_empty() {
        if src.capacity() == src.len() {
            let mut bigger = BytesMut::with_capacity(src.len() + STEP);
            bigger.extend_from_slice(&src);
            src = bigger;
        }
        let n = (src.capacity() - src.len()).min(chunk).min(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        let (result, peak) = peak_during(|| decode(&mut src));
        assert!(
            peak <= alloc_bound,
            "a decode call allocated {peak} > {alloc_bound} bytes"
        );
        assert!(
            src.capacity() <= bound,
            "capacity {} > {bound}",
            src.capacity()
        );
        match result {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return, // handshake over either way
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_hello_input_never_panics_or_overbuffers(
        data in hostile(valid_hello()),
        chunk in 1usize..200,
    ) {
        let mut opts = WireOptions::new();
        opts.max_token_size(512);
        let mut hs = HandshakeCodec::with_options(opts);
        let bound = hs.max_hello_len() + STEP;
        // At most the rest of one Hello is reserved; identity and token are
        // then views of the buffer, not copies.
        let alloc_bound = hs.max_hello_len() + alloc::SMALL;
        run(&data, chunk, bound, alloc_bound, |src| hs.decode_hello(src));
    }

    #[test]
    fn arbitrary_answer_input_never_panics_or_overbuffers(
        data in hostile(valid_answer()),
        chunk in 1usize..200,
    ) {
        let mut hs = HandshakeCodec::new();
        // At most the rest of one answer is reserved, and a Reject's text is
        // copied into a `String`.
        let alloc_bound = MAX_ANSWER_LEN + MAX_REASON_LEN + alloc::SMALL;
        run(&data, chunk, MAX_ANSWER_LEN + STEP, alloc_bound, |src| {
            hs.decode_answer(src)
        });
    }
}
