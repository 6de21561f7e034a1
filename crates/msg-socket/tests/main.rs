//! Every integration test of this crate, in one binary: one link instead of
//! one per file keeps CI fast and small on disk.

#[macro_use]
mod common;
mod raw;

mod auth_hook;
mod auth_identity;
mod bad_input_every_socket;
mod bad_input_flood;
mod bad_input_handshake;
mod bad_input_patterns;
mod compression_min_size;
mod heartbeat_dead_peer;
mod lifecycle_bind_with;
mod lifecycle_close_and_drop;
mod lifecycle_drop_frees_ports;
mod lifecycle_greeting;
mod lifecycle_linger;
mod lifecycle_options;
mod lifecycle_stats;
#[cfg(feature = "metrics")]
mod metrics_export;
mod outage_quic;
mod patterns_behaviour;
mod patterns_transports;
mod peer_routing;
mod pubsub_compression;
mod pubsub_filtering;
mod pubsub_large_messages;
mod pubsub_limits;
mod pubsub_recv_hwm;
mod pubsub_restart;
mod pubsub_sequence;
mod pubsub_slow_subscriber;
mod pubsub_subscriptions;
mod pubsub_topology;
mod reqrep_backoff;
mod reqrep_close;
mod reqrep_connection_lost;
mod reqrep_latency;
mod reqrep_pending_table;
mod reqrep_pipelining;
mod reqrep_reconnect_forever;
mod reqrep_rep_hwm;
mod reqrep_rep_peers;
mod reqrep_rep_restart;
mod reqrep_send_hwm;
mod reqrep_serve;
mod reqrep_stats;
mod reqrep_timeouts;
mod reqrep_topology;
mod sinks;
mod smoke_transports;
