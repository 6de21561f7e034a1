//! Arbitrary bytes, arriving in arbitrary reads, into the frame decoder.
//!
//! Checks that the decoder never panics, never lets the read buffer grow
//! past the frame limit, and that every frame it accepts encodes and decodes
//! back to itself with every compression this build has.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msg_wire::{Compression, FrameCodec, HEADER_LEN, WireError, WireOptions};

/// Small limit, so that "bounded by the limit" means something.
const MAX: usize = 4096;
/// The simulated reader grows a full buffer by this much, never more.
const STEP: usize = 64;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes; the rest is what the peer sent.
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut opts = WireOptions::new();
    opts.max_frame_size(MAX).compress_min_size(0);
    let mut codec = FrameCodec::with_options(opts);

    let mut src = BytesMut::with_capacity(STEP);
    let mut rest = input;
    let mut read_no: usize = 0;
    while !rest.is_empty() {
        if src.capacity() == src.len() {
            let mut bigger = BytesMut::with_capacity(src.len() + STEP);
            bigger.extend_from_slice(&src);
            src = bigger;
        }
        // Vary the read size from read to read: 1 to 256 bytes.
        read_no += 1;
        let want = 1
            + (usize::from(seed)
                .wrapping_mul(31)
                .wrapping_add(read_no * 17)
                % 256);
        let n = want.min(src.capacity() - src.len()).min(rest.len());
        src.extend_from_slice(&rest[..n]);
        rest = &rest[n..];

        loop {
            let result = codec.decode(&mut src);
            assert!(
                src.capacity() <= MAX + HEADER_LEN + STEP,
                "read buffer grew to {} bytes",
                src.capacity()
            );
            match result {
                Ok(Some(frame)) => {
                    for alg in Compression::ALL.into_iter().filter(|c| c.is_available()) {
                        let mut again = BytesMut::new();
                        match codec.encode_with(&frame, alg, &mut again) {
                            Ok(()) => {
                                let back =
                                    codec.decode(&mut again).expect("re-encoded frame decodes");
                                assert_eq!(back.as_ref(), Some(&frame));
                                assert!(again.is_empty());
                            }
                            // A payload that arrived compressed may be too big to
                            // send uncompressed (or if it does not shrink again).
                            Err(WireError::FrameTooLarge { .. }) if frame.payload().is_some() => {}
                            Err(e) => panic!("re-encoding a decoded frame failed: {e}"),
                        }
                    }
                }
                Ok(None) => break,
                // The connection would be closed here.
                Err(_) => return,
            }
        }
    }
});
