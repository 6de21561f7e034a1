//! Hello and answers survive encode/decode, split anywhere, and leave
//! whatever follows them in the buffer.

use bytes::{Bytes, BytesMut};
use msg_wire::{
    Answer, HandshakeCodec, Hello, MAGIC, PROTOCOL_VERSION, Reason, SocketType, WireOptions,
};
use proptest::prelude::*;

fn socket_type() -> impl Strategy<Value = SocketType> {
    proptest::sample::select(vec![
        SocketType::Req,
        SocketType::Rep,
        SocketType::Pub,
        SocketType::Sub,
        SocketType::Push,
        SocketType::Pull,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Peer,
    ])
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        socket_type(),
        proptest::collection::vec(any::<u8>(), 0..=255),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=4096)),
    )
        .prop_map(|(t, id, token)| Hello::new(t, id.into(), token.map(Bytes::from)))
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        (
            socket_type(),
            proptest::collection::vec(any::<u8>(), 0..=255)
        )
            .prop_map(|(t, id)| Answer::accept(t, id.into())),
        (any::<u16>(), any::<u8>(), "\\PC{0,200}").prop_map(|(code, version, text)| {
            Answer::Reject {
                version,
                code: Reason::from(code),
                text,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hello_round_trips_split_anywhere(
        hello in hello(),
        cut in any::<proptest::sample::Index>(),
        trailer in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut hs = HandshakeCodec::new();
        let mut wire = BytesMut::new();
        hs.encode_hello(&hello, &mut wire).unwrap();
        prop_assert!(wire.len() <= hs.max_hello_len());
        let hello_len = wire.len();
        wire.extend_from_slice(&trailer);

        let cut = cut.index(hello_len); // strictly inside the hello
        let mut src = BytesMut::from(&wire[..cut]);
        prop_assert_eq!(hs.decode_hello(&mut src).unwrap(), None);
        src.extend_from_slice(&wire[cut..]);
        prop_assert_eq!(hs.decode_hello(&mut src).unwrap(), Some(hello));
        prop_assert_eq!(&src[..], &trailer[..], "bytes after the hello stay");
    }

    #[test]
    fn answer_round_trips_split_anywhere(
        answer in answer(),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut hs = HandshakeCodec::new();
        let mut wire = BytesMut::new();
        hs.encode_answer(&answer, &mut wire).unwrap();
        prop_assert!(wire.len() <= msg_wire::MAX_ANSWER_LEN);
        let cut = cut.index(wire.len());
        let mut src = BytesMut::from(&wire[..cut]);
        prop_assert_eq!(hs.decode_answer(&mut src).unwrap(), None);
        src.extend_from_slice(&wire[cut..]);
        prop_assert_eq!(hs.decode_answer(&mut src).unwrap(), Some(answer));
        prop_assert!(src.is_empty());
    }
}

#[test]
fn empty_token_decodes_as_none() {
    let mut hs = HandshakeCodec::new();
    let mut wire = BytesMut::new();
    let hello = Hello::new(SocketType::Sub, Bytes::new(), Some(Bytes::new()));
    hs.encode_hello(&hello, &mut wire).unwrap();
    assert_eq!(wire.len(), 10);
    let got = hs.decode_hello(&mut wire).unwrap().unwrap();
    assert_eq!(got.token, None);
    assert_eq!(got.version, PROTOCOL_VERSION);
}

#[test]
fn hello_layout_is_as_documented() {
    let hs = HandshakeCodec::new();
    let mut wire = BytesMut::new();
    let hello = Hello::new(SocketType::Dealer, "ab".into(), Some("tok".into()));
    hs.encode_hello(&hello, &mut wire).unwrap();
    let mut want = MAGIC.to_vec();
    want.extend_from_slice(&[1, 7, 0, 2, b'a', b'b', 0, 3, b't', b'o', b'k']);
    assert_eq!(&wire[..], &want[..]);

    let mut wire = BytesMut::new();
    hs.encode_answer(&Answer::reject(Reason::AuthRejected, "no"), &mut wire)
        .unwrap();
    let mut want = MAGIC.to_vec();
    want.extend_from_slice(&[1, 1, 0, 5, 0, 2, b'n', b'o']);
    assert_eq!(&wire[..], &want[..]);

    let mut wire = BytesMut::new();
    hs.encode_answer(&Answer::accept(SocketType::Router, "r".into()), &mut wire)
        .unwrap();
    let mut want = MAGIC.to_vec();
    want.extend_from_slice(&[1, 0, 8, 0, 1, b'r']);
    assert_eq!(&wire[..], &want[..]);
}

#[test]
fn reject_from_a_newer_server_is_readable() {
    let hs = HandshakeCodec::new();
    let mut wire = BytesMut::new();
    let answer = Answer::Reject {
        version: 7,
        code: Reason::UnsupportedVersion,
        text: "speak 7".into(),
    };
    hs.encode_answer(&answer, &mut wire).unwrap();
    let got = HandshakeCodec::new().decode_answer(&mut wire).unwrap();
    assert_eq!(got.as_ref().map(Answer::version), Some(7));
    assert_eq!(got, Some(answer));
}

#[test]
fn larger_token_limit_is_honoured() {
    let mut opts = WireOptions::new();
    opts.max_token_size(65535);
    let mut hs = HandshakeCodec::with_options(opts);
    assert_eq!(hs.max_hello_len(), 4 + 4 + 255 + 2 + 65535);
    let hello = Hello::new(
        SocketType::Peer,
        vec![1; 255].into(),
        Some(vec![2; 65535].into()),
    );
    let mut wire = BytesMut::new();
    hs.encode_hello(&hello, &mut wire).unwrap();
    assert_eq!(wire.len(), hs.max_hello_len());
    assert_eq!(hs.decode_hello(&mut wire).unwrap(), Some(hello));
}
