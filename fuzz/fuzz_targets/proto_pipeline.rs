//! Drives msg-socket's Push and Pull state machines through an arbitrary sequence
//! of operations on the socket-free harness; see
//! `msg_socket::fuzzing::pipeline` for the operations and the invariants checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    msg_socket::fuzzing::pipeline(data);
});
