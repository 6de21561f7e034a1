//! The one error type of the comparison.

use std::io;

use crate::measure::{Shape, Transport};

/// Why an experiment could not produce its measurements.
///
/// Any of these means the numbers of that run are missing, not that they
/// are slow: the comparison never fails because something was slow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A socket, thread or runtime operation failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// libzmq returned an error.
    #[error("libzmq error")]
    Zmq(#[from] zmq::Error),
    /// An error from msg's sockets, with its sources.
    #[error("msg error: {0}")]
    Msg(String),
    /// A peer did not answer within the experiment's time bound.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The two ends disagree, for instance on how many messages went
    /// through a reliable pattern.
    #[error("inconsistent result: {0}")]
    Inconsistent(String),
    /// The row does not run over this transport (QUIC is for msg rows
    /// only).
    #[error("transport {0} is not supported by this row")]
    Unsupported(Transport),
    /// The row does not run in this shape.
    #[error("shape {0} is not supported by this row")]
    UnsupportedShape(Shape),
    /// A measurement thread panicked.
    #[error("a measurement thread panicked")]
    Panicked,
}
