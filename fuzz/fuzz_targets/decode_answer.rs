//! Arbitrary bytes, arriving in arbitrary reads, into the client side of the
//! handshake: `HandshakeCodec::decode_answer`.
//!
//! Checks that it never panics, never buffers more than one maximal answer
//! (`MAX_ANSWER_LEN`), and that an answer it accepts re-encodes and decodes
//! to itself.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msg_wire::{HandshakeCodec, MAX_ANSWER_LEN};

/// The simulated reader grows a full buffer by this much, never more.
const STEP: usize = 64;

fuzz_target!(|data: &[u8]| {
    // First byte: the read size (1 to 256 bytes). The rest is what the
    // server sent.
    let Some((&read, input)) = data.split_first() else {
        return;
    };
    let mut hs = HandshakeCodec::new();
    let bound = MAX_ANSWER_LEN + STEP;
    let read = 1 + usize::from(read);

    let mut src = BytesMut::with_capacity(STEP);
    let mut rest = input;
    while !rest.is_empty() {
        if src.capacity() == src.len() {
            let mut bigger = BytesMut::with_capacity(src.len() + STEP);
            bigger.extend_from_slice(&src);
            src = bigger;
        }
        let n = read.min(src.capacity() - src.len()).min(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];

        let result = hs.decode_answer(&mut src);
        assert!(
            src.capacity() <= bound,
            "buffer grew to {} > {bound}",
            src.capacity()
        );
        match result {
            Ok(Some(answer)) => {
                let mut again = BytesMut::new();
                hs.encode_answer(&answer, &mut again)
                    .expect("decoded answer re-encodes");
                assert_eq!(hs.decode_answer(&mut again).unwrap(), Some(answer));
                assert!(again.is_empty());
                return;
            }
            Ok(None) => {}
            // The client would close here.
            Err(e) => {
                let _ = e.reason();
                return;
            }
        }
    }
});
