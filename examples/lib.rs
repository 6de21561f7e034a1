#![doc = include_str!("../README.md")]
//!
//! ## This crate
//!
//! `msg-examples` holds the runnable examples beside this file (run one with
//! `cargo run --example NAME`) and, through these docs, compiles and runs the code in
//! the README as a doctest.
