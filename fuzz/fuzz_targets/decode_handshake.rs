//! Arbitrary bytes into the handshake decoders (Hello on the server side,
//! Answer on the client side).
//!
//! Checks that they never panic, never buffer more than one maximal message,
//! and that what they accept re-encodes to the same bytes' meaning.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msg_wire::{HandshakeCodec, MAX_ANSWER_LEN, WireOptions};

const STEP: usize = 64;

fuzz_target!(|data: &[u8]| {
    // First byte: which decoder, the token limit and the read size.
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let answer = control & 1 == 1;
    let mut opts = WireOptions::new();
    opts.max_token_size(usize::from(control >> 1) * 16);
    let mut hs = HandshakeCodec::with_options(opts);
    let bound = if answer {
        MAX_ANSWER_LEN
    } else {
        hs.max_hello_len()
    } + STEP;
    let read = 1 + usize::from(control % 37);

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

        let done = if answer {
            let result = hs.decode_answer(&mut src);
            check_bound(&src, bound);
            match result {
                Ok(Some(a)) => {
                    let mut again = BytesMut::new();
                    hs.encode_answer(&a, &mut again)
                        .expect("decoded answer re-encodes");
                    assert_eq!(hs.decode_answer(&mut again).unwrap(), Some(a));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    let _ = e.reason();
                    true
                }
            }
        } else {
            let result = hs.decode_hello(&mut src);
            check_bound(&src, bound);
            match result {
                Ok(Some(h)) => {
                    let mut again = BytesMut::new();
                    hs.encode_hello(&h, &mut again)
                        .expect("decoded hello re-encodes");
                    assert_eq!(hs.decode_hello(&mut again).unwrap(), Some(h));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    let _ = e.reason();
                    true
                }
            }
        };
        if done {
            return;
        }
    }
});

fn check_bound(src: &BytesMut, bound: usize) {
    assert!(
        src.capacity() <= bound,
        "buffer grew to {} > {bound}",
        src.capacity()
    );
}
