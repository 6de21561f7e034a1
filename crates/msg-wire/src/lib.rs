//! msg-wire
