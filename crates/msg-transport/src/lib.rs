//! msg-transport
