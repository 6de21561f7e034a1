//! Drives msg-socket's Pair state machines through an arbitrary sequence
//! of operations on the socket-free harness; see
//! `msg_socket::fuzzing::pair` for the operations and the invariants checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    msg_socket::fuzzing::pair(data);
});
