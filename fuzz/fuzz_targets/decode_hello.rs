//! Arbitrary bytes, arriving in arbitrary reads, into the server side of the
//! handshake: `HandshakeCodec::decode_hello`.
//!
//! Checks that it never panics, never buffers more than one maximal Hello,
//! and that a Hello it accepts re-encodes and decodes to itself.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msg_wire::{HandshakeCodec, WireOptions};

/// The simulated reader grows a full buffer by this much, never more.
const STEP: usize = 64;

fuzz_target!(|data: &[u8]| {
    // First byte: the token limit (in 16-byte units, 0 to 4080 bytes).
    // Second: the read size (1 to 256 bytes). The rest is what the client sent.
    let &[limit, read, ref input @ ..] = data else {
        return;
    };
    let mut opts = WireOptions::new();
    opts.max_token_size(usize::from(limit) * 16);
    let mut hs = HandshakeCodec::with_options(opts);
    let bound = hs.max_hello_len() + STEP;
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

        let result = hs.decode_hello(&mut src);
        assert!(
            src.capacity() <= bound,
            "buffer grew to {} > {bound}",
            src.capacity()
        );
        match result {
            Ok(Some(hello)) => {
                let mut again = BytesMut::new();
                hs.encode_hello(&hello, &mut again)
                    .expect("decoded hello re-encodes");
                assert_eq!(hs.decode_hello(&mut again).unwrap(), Some(hello));
                assert!(again.is_empty());
                return;
            }
            Ok(None) => {}
            // The server would answer or close here.
            Err(e) => {
                let _ = e.reason();
                return;
            }
        }
    }
});
