//! Endpoint strings (`tcp://host:port`, `ipc:///path`, ...) and peer addresses.
//!
//! Parsing is deliberately strict: a typo in an endpoint should fail at the call site
//! with a message that quotes the string and names the problem, not later as a
//! confusing connect error.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::TransportError;

/// The transport named by an endpoint's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `tcp://host:port`: plain TCP.
    Tcp,
    /// `ipc:///path`: a Unix domain socket.
    Ipc,
    /// `quic://host:port`: one QUIC stream per connection.
    Quic,
    /// `tls://host:port`: TLS over TCP.
    Tls,
    /// `inproc://name`: an in-process pipe.
    Inproc,
}

impl Scheme {
    /// Every scheme, in the order they are listed in error messages.
    pub const ALL: [Scheme; 5] = [
        Scheme::Tcp,
        Scheme::Ipc,
        Scheme::Quic,
        Scheme::Tls,
        Scheme::Inproc,
    ];

    /// The scheme as written in an endpoint string, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Ipc => "ipc",
            Scheme::Quic => "quic",
            Scheme::Tls => "tls",
            Scheme::Inproc => "inproc",
        }
    }

    /// Whether endpoints of this scheme are `host:port` network addresses.
    pub fn is_network(self) -> bool {
        matches!(self, Scheme::Tcp | Scheme::Quic | Scheme::Tls)
    }

    fn from_str_ignore_case(s: &str) -> Option<Scheme> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host part of a network endpoint: a DNS name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, resolved with the system resolver when binding or connecting.
    Name(String),
    /// An IPv4 or IPv6 address. IPv6 addresses are written in brackets: `[::1]`.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

/// Where to bind or connect: a transport plus its address.
///
/// Endpoints are written as URLs and parsed with [`str::parse`]; [`Display`](fmt::Display)
/// writes them back in the same form (the scheme in lower case).
///
/// | string | meaning |
/// |---|---|
/// | `tcp://127.0.0.1:5555`, `tcp://[::1]:5555`, `tcp://localhost:5555` | TCP |
/// | `tls://example.com:5556` | TLS over TCP |
/// | `quic://127.0.0.1:5557` | QUIC (UDP) |
/// | `ipc:///run/app.sock`, `ipc://relative/app.sock` | Unix domain socket |
/// | `inproc://workers` | in-process pipe, by name |
///
/// Port 0 asks the operating system for a free port when binding; the listener's
/// [`local_endpoint`](crate::Listener::local_endpoint) reports the real one.
///
/// # Examples
///
/// ```
/// use msg_transport::{Endpoint, Scheme};
///
/// let ep: Endpoint = "tcp://127.0.0.1:0".parse()?;
/// assert_eq!(ep.scheme(), Scheme::Tcp);
/// assert_eq!(ep.to_string(), "tcp://127.0.0.1:0");
///
/// let err = "udp://127.0.0.1:9".parse::<Endpoint>().unwrap_err();
/// assert!(err.to_string().contains("unknown scheme \"udp\""));
/// # Ok::<(), msg_transport::EndpointError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `tcp://host:port`.
    Tcp {
        /// Host name or IP address.
        host: Host,
        /// Port; 0 when binding means "any free port".
        port: u16,
    },
    /// `ipc://path`: a Unix domain socket at this filesystem path.
    Ipc {
        /// Absolute (`ipc:///tmp/x.sock`) or relative to the working directory
        /// (`ipc://x.sock`).
        path: PathBuf,
    },
    /// `quic://host:port`.
    Quic {
        /// Host name or IP address; also the default TLS server name.
        host: Host,
        /// UDP port; 0 when binding means "any free port".
        port: u16,
    },
    /// `tls://host:port`.
    Tls {
        /// Host name or IP address; also the default TLS server name.
        host: Host,
        /// Port; 0 when binding means "any free port".
        port: u16,
    },
    /// `inproc://name`: an in-process endpoint registered under `name`.
    Inproc {
        /// The registry name; any non-empty string.
        name: String,
    },
}

impl Endpoint {
    /// A `tcp://` endpoint for a socket address.
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint::Tcp {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// A `tls://` endpoint for a socket address.
    pub fn tls(addr: SocketAddr) -> Self {
        Endpoint::Tls {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// A `quic://` endpoint for a socket address.
    pub fn quic(addr: SocketAddr) -> Self {
        Endpoint::Quic {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// An `ipc://` endpoint for a filesystem path.
    pub fn ipc(path: impl Into<PathBuf>) -> Self {
        Endpoint::Ipc { path: path.into() }
    }

    /// An `inproc://` endpoint for a registry name.
    pub fn inproc(name: impl Into<String>) -> Self {
        Endpoint::Inproc { name: name.into() }
    }

    /// The endpoint's scheme, which selects the transport.
    pub fn scheme(&self) -> Scheme {
        match self {
            Endpoint::Tcp { .. } => Scheme::Tcp,
            Endpoint::Ipc { .. } => Scheme::Ipc,
            Endpoint::Quic { .. } => Scheme::Quic,
            Endpoint::Tls { .. } => Scheme::Tls,
            Endpoint::Inproc { .. } => Scheme::Inproc,
        }
    }

    /// The host and port of a network endpoint (`tcp`, `tls`, `quic`), `None` otherwise.
    pub fn host_port(&self) -> Option<(&Host, u16)> {
        match self {
            Endpoint::Tcp { host, port }
            | Endpoint::Quic { host, port }
            | Endpoint::Tls { host, port } => Some((host, *port)),
            Endpoint::Ipc { .. } | Endpoint::Inproc { .. } => None,
        }
    }

    /// The socket address of a network endpoint whose host is an IP address.
    ///
    /// `None` for host names (use [`resolve`](Self::resolve)) and for `ipc`/`inproc`.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host_port()? {
            (Host::Ip(ip), port) => Some(SocketAddr::new(*ip, port)),
            (Host::Name(_), _) => None,
        }
    }

    /// The filesystem path of an `ipc` endpoint.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Endpoint::Ipc { path } => Some(path),
            _ => None,
        }
    }

    /// The same address with another network scheme, e.g. `tcp://h:1` → `tls://h:1`.
    ///
    /// Returns `None` when either this endpoint or `scheme` is not a network scheme.
    pub fn with_scheme(&self, scheme: Scheme) -> Option<Endpoint> {
        let (host, port) = self.host_port()?;
        let host = host.clone();
        match scheme {
            Scheme::Tcp => Some(Endpoint::Tcp { host, port }),
            Scheme::Tls => Some(Endpoint::Tls { host, port }),
            Scheme::Quic => Some(Endpoint::Quic { host, port }),
            Scheme::Ipc | Scheme::Inproc => None,
        }
    }

    /// Resolves a network endpoint to socket addresses, in the resolver's order.
    ///
    /// IP hosts resolve to themselves without a lookup; host names go through
    /// [`tokio::net::lookup_host`].
    ///
    /// # Errors
    ///
    /// [`TransportError::Resolve`] when the lookup fails or finds no address, and
    /// [`TransportError::Unsupported`] for `ipc` and `inproc` endpoints, which have no
    /// network address.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, TransportError> {
        let Some((host, port)) = self.host_port() else {
            return Err(TransportError::Unsupported {
                scheme: self.scheme(),
                reason: "the endpoint has no network address to resolve",
            });
        };
        let name = match host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => name,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|source| TransportError::Resolve {
                host: name.clone(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TransportError::Resolve {
                host: name.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the name has no addresses",
                ),
            });
        }
        Ok(addrs)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port }
            | Endpoint::Quic { host, port }
            | Endpoint::Tls { host, port } => write!(f, "{}://{host}:{port}", self.scheme()),
            Endpoint::Ipc { path } => write!(f, "ipc://{}", path.display()),
            Endpoint::Inproc { name } => write!(f, "inproc://{name}"),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |kind| EndpointError {
            input: input.to_owned(),
            kind,
        };
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(fail(EndpointErrorKind::MissingScheme));
        };
        let scheme = match Scheme::from_str_ignore_case(scheme) {
            Some(scheme) => scheme,
            None if scheme.is_empty() => return Err(fail(EndpointErrorKind::MissingScheme)),
            None => return Err(fail(EndpointErrorKind::UnknownScheme(scheme.to_owned()))),
        };
        match scheme {
            Scheme::Ipc => {
                if rest.is_empty() {
                    return Err(fail(EndpointErrorKind::EmptyPath));
                }
                if rest.contains('\0') {
                    return Err(fail(EndpointErrorKind::InvalidPath));
                }
                Ok(Endpoint::Ipc {
                    path: PathBuf::from(rest),
                })
            }
            Scheme::Inproc => {
                if rest.is_empty() {
                    return Err(fail(EndpointErrorKind::EmptyName));
                }
                Ok(Endpoint::Inproc {
                    name: rest.to_owned(),
                })
            }
            Scheme::Tcp | Scheme::Quic | Scheme::Tls => {
                let (host, port) = parse_host_port(rest).map_err(fail)?;
                Ok(match scheme {
                    Scheme::Tcp => Endpoint::Tcp { host, port },
                    Scheme::Quic => Endpoint::Quic { host, port },
                    _ => Endpoint::Tls { host, port },
                })
            }
        }
    }
}

/// Splits `host:port` / `[v6]:port` and validates both halves.
fn parse_host_port(rest: &str) -> Result<(Host, u16), EndpointErrorKind> {
    if rest.is_empty() {
        return Err(EndpointErrorKind::MissingHost);
    }
    let (host, port) = if let Some(after_bracket) = rest.strip_prefix('[') {
        // `[v6]:port`: the bracket must close, and only `:port` may follow it.
        let Some((inside, after)) = after_bracket.split_once(']') else {
            return Err(EndpointErrorKind::BadIpv6(
                "missing closing bracket \"]\"".into(),
            ));
        };
        let ip: Ipv6Addr = inside.parse().map_err(|_| {
            EndpointErrorKind::BadIpv6(format!("\"{inside}\" is not an IPv6 address"))
        })?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(EndpointErrorKind::MissingPort),
            None => {
                return Err(EndpointErrorKind::BadIpv6(format!(
                    "unexpected \"{after}\" after \"]\""
                )));
            }
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(EndpointErrorKind::MissingPort);
        };
        if host.contains(':') {
            return Err(EndpointErrorKind::BadIpv6(
                "IPv6 addresses must be written in brackets, e.g. [::1]:5555".into(),
            ));
        }
        if host.contains(']') {
            return Err(EndpointErrorKind::BadIpv6(
                "missing opening bracket \"[\"".into(),
            ));
        }
        (parse_host(host)?, port)
    };
    if port.is_empty() {
        return Err(EndpointErrorKind::MissingPort);
    }
    // `u16::from_str` accepts a leading `+`; a port is digits only.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointErrorKind::BadPort(port.to_owned()));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| EndpointErrorKind::BadPort(port.to_owned()))?;
    Ok((host, port))
}

fn parse_host(host: &str) -> Result<Host, EndpointErrorKind> {
    if host.is_empty() {
        return Err(EndpointErrorKind::MissingHost);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    // Something made only of digits and dots was meant as an IPv4 address; do not
    // send "999.1.1.1" to the resolver as a name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(EndpointErrorKind::BadHost(host.to_owned()));
    }
    let valid_name = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid_name {
        return Err(EndpointErrorKind::BadHost(host.to_owned()));
    }
    Ok(Host::Name(host.to_owned()))
}

/// An endpoint string that could not be parsed.
///
/// Its message quotes the input and names the problem, e.g.
/// `invalid endpoint "tcp://127.0.0.1:99999": bad port "99999" (expected 0 to 65535)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint \"{input}\": {kind}")]
pub struct EndpointError {
    input: String,
    kind: EndpointErrorKind,
}

impl EndpointError {
    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &EndpointErrorKind {
        &self.kind
    }
}

/// What is wrong with an endpoint string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointErrorKind {
    /// No `scheme://` prefix.
    #[error("missing scheme (expected tcp://, ipc://, quic://, tls:// or inproc://)")]
    MissingScheme,
    /// A scheme this crate does not know.
    #[error("unknown scheme \"{0}\" (expected tcp, ipc, quic, tls or inproc)")]
    UnknownScheme(String),
    /// A network endpoint without a host.
    #[error("missing host")]
    MissingHost,
    /// A host that is neither an IP address nor a valid host name.
    #[error("bad host \"{0}\"")]
    BadHost(String),
    /// A network endpoint without `:port`.
    #[error("missing port (expected host:port)")]
    MissingPort,
    /// A port that is not a number from 0 to 65535.
    #[error("bad port \"{0}\" (expected 0 to 65535)")]
    BadPort(String),
    /// A malformed bracketed IPv6 address; the text says how.
    #[error("bad IPv6 address: {0}")]
    BadIpv6(String),
    /// `ipc://` with nothing after it.
    #[error("empty path")]
    EmptyPath,
    /// An `ipc://` path the operating system cannot represent (it contains NUL).
    #[error("path contains a NUL byte")]
    InvalidPath,
    /// `inproc://` with nothing after it.
    #[error("empty name")]
    EmptyName,
}

/// The address of the other end of a connection.
///
/// Unix domain socket and in-process peers have no address of their own, so each
/// connection gets a process-unique `conn_id`: two IPC clients of one listener are
/// always told apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A TLS-over-TCP peer.
    Tls(SocketAddr),
    /// A QUIC peer (its UDP address).
    Quic(SocketAddr),
    /// A Unix domain socket connection.
    Ipc {
        /// The socket path the connection was made to (the listener's path).
        path: PathBuf,
        /// Unique among all IPC and inproc connections of this process.
        conn_id: u64,
    },
    /// An in-process connection.
    Inproc {
        /// The endpoint name the connection was made to.
        name: String,
        /// Unique among all IPC and inproc connections of this process.
        conn_id: u64,
    },
}

impl PeerAddr {
    /// The peer's socket address, for network transports.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Tcp(addr) | PeerAddr::Tls(addr) | PeerAddr::Quic(addr) => Some(*addr),
            PeerAddr::Ipc { .. } | PeerAddr::Inproc { .. } => None,
        }
    }

    /// The connection id of an IPC or inproc peer.
    pub fn conn_id(&self) -> Option<u64> {
        match self {
            PeerAddr::Ipc { conn_id, .. } | PeerAddr::Inproc { conn_id, .. } => Some(*conn_id),
            _ => None,
        }
    }

    /// The transport this peer is connected over.
    pub fn scheme(&self) -> Scheme {
        match self {
            PeerAddr::Tcp(_) => Scheme::Tcp,
            PeerAddr::Tls(_) => Scheme::Tls,
            PeerAddr::Quic(_) => Scheme::Quic,
            PeerAddr::Ipc { .. } => Scheme::Ipc,
            PeerAddr::Inproc { .. } => Scheme::Inproc,
        }
    }
}

/// Written like an endpoint; IPC and inproc peers get `#conn_id` appended:
/// `tcp://127.0.0.1:40112`, `ipc:///run/app.sock#7`, `inproc://workers#8`.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) | PeerAddr::Tls(addr) | PeerAddr::Quic(addr) => {
                write!(f, "{}://{addr}", self.scheme())
            }
            PeerAddr::Ipc { path, conn_id } => write!(f, "ipc://{}#{conn_id}", path.display()),
            PeerAddr::Inproc { name, conn_id } => write!(f, "inproc://{name}#{conn_id}"),
        }
    }
}

/// Hands out the process-unique ids of IPC and inproc connections.
pub(crate) fn next_conn_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv6_with_brackets() {
        let ep: Endpoint = "quic://[::1]:0".parse().unwrap();
        assert_eq!(ep.socket_addr(), Some("[::1]:0".parse().unwrap()));
        assert_eq!(ep.to_string(), "quic://[::1]:0");
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let ep: Endpoint = "TCP://localhost:1".parse().unwrap();
        assert_eq!(ep.to_string(), "tcp://localhost:1");
    }

    #[test]
    fn plus_sign_port_is_rejected() {
        let err = "tcp://h:+1".parse::<Endpoint>().unwrap_err();
        assert_eq!(err.kind(), &EndpointErrorKind::BadPort("+1".into()));
    }
}
