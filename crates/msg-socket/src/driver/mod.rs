//! Async drivers: tasks that move bytes and feed the state machines.

pub(crate) mod conn;
pub(crate) mod core;
pub(crate) mod link;
pub(crate) mod shared;
