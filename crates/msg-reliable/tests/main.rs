//! Every integration test of this crate, in one binary: one link instead of
//! one per file keeps CI fast and small on disk.

mod common;
mod support;

mod backend_memory;
mod backend_postgres;
mod backend_redb;
mod crash_sigkill;
mod driver_batching;
mod socket_batches;
mod socket_exchange;
#[cfg(feature = "metrics")]
mod socket_metrics;
mod socket_receive_window;
mod socket_recovery;
mod socket_stats;
mod socket_takeover;
