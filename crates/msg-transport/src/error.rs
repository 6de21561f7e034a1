//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Endpoint, EndpointError, Scheme};

/// An error from binding, connecting, accepting or configuring a transport.
///
/// Messages are lower case and name the endpoint involved; the underlying cause, when
/// there is one, is kept as the [`source`](std::error::Error::source) rather than
/// repeated in the message. The `is_*` predicates answer the questions a reconnect loop
/// asks without matching on variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The endpoint string could not be parsed.
    #[error(transparent)]
    InvalidEndpoint(#[from] EndpointError),

    /// Nothing is listening at the endpoint: TCP connection refused, no socket file at
    /// an IPC path, no listener registered under an inproc name, or a QUIC server that
    /// refused the connection.
    #[error("connection refused: nothing is listening at {endpoint}")]
    Refused {
        /// The endpoint connected to.
        endpoint: Endpoint,
    },

    /// Another listener already owns the address, IPC path or inproc name.
    #[error("address already in use: {endpoint}")]
    AddrInUse {
        /// The endpoint bound.
        endpoint: Endpoint,
    },

    /// An IPC bind found a file at the path that is not a socket; it is left alone.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path of the existing file.
        path: PathBuf,
    },

    /// An operation did not finish within its configured time.
    #[error("{op} {endpoint} timed out after {after:?}")]
    Timeout {
        /// What timed out, e.g. `"connect to"`.
        op: &'static str,
        /// The endpoint involved.
        endpoint: Endpoint,
        /// The configured limit.
        after: Duration,
    },

    /// A host name did not resolve to any address.
    #[error("cannot resolve host \"{host}\"")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },

    /// An I/O error from the operating system.
    #[error("{op} {endpoint} failed")]
    Io {
        /// What failed, e.g. `"bind"`, `"connect to"`, `"accept on"`.
        op: &'static str,
        /// The endpoint involved.
        endpoint: Endpoint,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A TLS handshake failed, e.g. the peer's certificate is not trusted.
    #[error("tls handshake with {endpoint} failed")]
    Tls {
        /// The endpoint involved.
        endpoint: Endpoint,
        /// The TLS error (wrapped in an `io::Error`, as tokio-rustls reports it).
        #[source]
        source: io::Error,
    },

    /// A QUIC connection could not be established.
    #[error("quic connection with {endpoint} failed")]
    Quic {
        /// The endpoint involved.
        endpoint: Endpoint,
        /// quinn's error, wrapped in an `io::Error`.
        #[source]
        source: io::Error,
    },

    /// The endpoint's transport needs a configuration that was not given, such as a
    /// server certificate to bind a `tls://` endpoint.
    #[error("{scheme} endpoint needs {what}")]
    MissingConfig {
        /// The endpoint's scheme.
        scheme: Scheme,
        /// What is missing.
        what: &'static str,
    },

    /// The endpoint's transport is not available in this build or on this platform, or
    /// the operation makes no sense for it.
    #[error("{scheme} endpoints are not supported here: {reason}")]
    Unsupported {
        /// The endpoint's scheme.
        scheme: Scheme,
        /// Why, e.g. "msg-transport was built without the \"quic\" feature".
        reason: &'static str,
    },

    /// A configuration (certificates, keys, TLS settings) was rejected.
    #[error("invalid {what}")]
    Config {
        /// What was being configured or loaded, e.g. `"tls client configuration"`.
        what: String,
        /// Why it was rejected.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The listener was closed and accepts no more connections.
    #[error("listener closed")]
    Closed,
}

impl TransportError {
    /// Whether nothing was listening at the endpoint.
    pub fn is_refused(&self) -> bool {
        match self {
            TransportError::Refused { .. } => true,
            TransportError::Io { source, .. } => source.kind() == io::ErrorKind::ConnectionRefused,
            _ => false,
        }
    }

    /// Whether an operation ran out of time.
    pub fn is_timeout(&self) -> bool {
        match self {
            TransportError::Timeout { .. } => true,
            TransportError::Io { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the address, path or name is owned by another listener.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, TransportError::AddrInUse { .. })
    }

    /// Whether the listener has been closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TransportError::Closed)
    }

    /// Whether the problem is with the caller's configuration or endpoint rather than the
    /// network: retrying the same call will fail the same way.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            TransportError::InvalidEndpoint(_)
                | TransportError::MissingConfig { .. }
                | TransportError::Unsupported { .. }
                | TransportError::Config { .. }
                | TransportError::NotASocket { .. }
        )
    }

    /// Maps an `io::Error` from `op` on `endpoint`, giving refused and in-use errors
    /// their own variants.
    pub(crate) fn io(op: &'static str, endpoint: &Endpoint, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => TransportError::Refused {
                endpoint: endpoint.clone(),
            },
            io::ErrorKind::AddrInUse => TransportError::AddrInUse {
                endpoint: endpoint.clone(),
            },
            _ => TransportError::Io {
                op,
                endpoint: endpoint.clone(),
                source,
            },
        }
    }

    /// A configuration error about `what`.
    #[cfg_attr(not(any(feature = "tls", feature = "quic")), allow(dead_code))]
    pub(crate) fn config(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        TransportError::Config {
            what: what.into(),
            source: source.into(),
        }
    }
}
