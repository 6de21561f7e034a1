//! Every integration test of this crate, in one binary: one link instead of
//! one per file keeps CI fast and small on disk.

mod common;

mod bench_summaries;
mod book_transcripts;
mod dealer_router;
mod demo_tour;
mod errors_are_one_line;
mod metrics_scrape;
mod pubsub_delivers;
mod pushpull_delivers;
mod reqrep_round_trips;
mod send_recv;
mod tls_certificates;
