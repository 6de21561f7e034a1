//! Runnable examples of msg live beside this file; run one with `cargo run --example NAME`.
