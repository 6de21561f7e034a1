//! Every integration test of this crate, in one binary: one link instead of
//! one per file keeps CI fast and small on disk.

mod common;

mod concurrency;
mod connect_refused;
mod echo_framed;
mod endpoint_parse;
mod fault_injection;
mod inproc_registry;
mod ipc_files;
mod lifecycle_close;
mod pem_loading;
mod quic_streams;
mod quic_verification;
mod tcp_options;
mod tls_verification;
