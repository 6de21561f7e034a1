//! Every integration test of this crate, in one binary: one link instead of
//! one per file keeps CI fast and small on disk.

mod common;

mod codec_bounded_memory;
mod codec_buffer_reuse;
mod codec_roundtrip;
mod codec_split_stream;
mod codec_tokio_util;
mod compression_bombs;
mod compression_choice;
mod decode_rejects_malformed;
mod decode_zero_copy;
mod handshake_rejects_bad_input;
mod handshake_roundtrip;
mod handshake_tokio_util;
