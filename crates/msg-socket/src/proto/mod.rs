//! Sans-IO protocol logic: no sockets, no clocks (time is an argument).

pub(crate) mod backoff;
pub(crate) mod handshake;
pub(crate) mod heartbeat;
pub(crate) mod pending;
pub(crate) mod topics;
