//! A stream of frames decodes the same however the bytes are cut into
//! reads.

use crate::common;

use bytes::BytesMut;
use msg_wire::{Frame, FrameCodec, WireOptions};
use proptest::prelude::*;

fn encode_stream(frames: &[(Frame, msg_wire::Compression)]) -> (FrameCodec, Vec<u8>) {
    let mut opts = WireOptions::new();
    opts.compress_min_size(128);
    let mut codec = FrameCodec::with_options(opts);
    let mut buf = BytesMut::new();
    for (f, c) in frames {
        codec.encode_with(f, *c, &mut buf).unwrap();
    }
    (codec, buf.to_vec())
}

fn decode_in_chunks(codec: &mut FrameCodec, bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        src.extend_from_slice(&bytes[start..end]);
        start = end;
        out.extend(common::decode_all(codec, &mut src).unwrap());
    }
    assert!(src.is_empty(), "{} bytes left over", src.len());
    out
}

fn frames() -> impl Strategy<Value = Vec<(Frame, msg_wire::Compression)>> {
    proptest::collection::vec(
        (
            common::frame(common::payload(1024)),
            common::any_compression(),
        ),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn split_in_two_anywhere(frames in frames(), cut in any::<proptest::sample::Index>()) {
        let (mut codec, bytes) = encode_stream(&frames);
        let cut = cut.index(bytes.len() + 1);
        let got = decode_in_chunks(&mut codec, &bytes, &[cut]);
        let want: Vec<Frame> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn split_in_many_pieces(
        frames in frames(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
    ) {
        let (mut codec, bytes) = encode_stream(&frames);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let got = decode_in_chunks(&mut codec, &bytes, &cuts);
        let want: Vec<Frame> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn byte_at_a_time() {
    let frames: Vec<(Frame, msg_wire::Compression)> = vec![
        (Frame::Ping { nonce: 1 }, msg_wire::Compression::None),
        (
            Frame::Publish {
                topic: "a.b".into(),
                seq: 2,
                payload: vec![3u8; 500].into(),
            },
            msg_wire::Compression::None,
        ),
        (
            Frame::Close {
                code: msg_wire::Reason::Shutdown,
                text: "bye".into(),
            },
            msg_wire::Compression::None,
        ),
    ];
    let (mut codec, bytes) = encode_stream(&frames);
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    let got = decode_in_chunks(&mut codec, &bytes, &cuts);
    assert_eq!(got, frames.into_iter().map(|(f, _)| f).collect::<Vec<_>>());
}
