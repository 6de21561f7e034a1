#![doc = include_str!("../README.md")]
//!
//! ## This crate
//!
//! `msg-examples` holds the runnable examples beside this file (run one with
//! `cargo run --example NAME`) and, through these docs, compiles and runs the code in
//! the README as a doctest.

#[cfg(test)]
mod tests {
    /// The book's getting started chapter shows the README's program from
    /// `first_steps.rs`; the two copies must not drift apart.
    #[test]
    fn the_readme_program_is_the_first_step() {
        let steps = include_str!("first_steps.rs");
        let start =
            steps.find("// ANCHOR: taste\n").expect("taste anchor") + "// ANCHOR: taste\n".len();
        let end = steps
            .find("    // ANCHOR_END: taste")
            .expect("taste end anchor");
        let body = &steps[start..end];
        assert!(
            include_str!("../README.md").contains(body),
            "README.md's program differs from the taste step of examples/first_steps.rs:\n{body}"
        );
    }
}
