//! The tracing test, in a binary of its own.
//!
//! tracing caches, per call site, whether any subscriber wants its events.
//! A test that installs a subscriber for its own thread only
//! (`tracing::subscriber::with_default`) cannot rely on that cache while
//! other tests of the same process hit the same call sites on other threads
//! without one: in the shared binary this test lost events now and then.

#[allow(unused_imports)]
mod support;

mod socket_tracing;
