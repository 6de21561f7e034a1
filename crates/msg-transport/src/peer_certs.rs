//! The verified certificate chain of a connection's peer, and the names in it.
//!
//! Always compiled, so that the layers above can carry it whatever the features; only
//! the TLS and QUIC transports ever make one.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;

/// The certificate chain a peer presented and this side verified, with the names in
/// its end-entity certificate parsed out.
///
/// A TLS or QUIC connection has one when the peer presented a certificate and it was
/// verified: on a server, a client certificate under
/// [`TlsServerConfig::require_client_auth`](crate::TlsServerConfig::require_client_auth)
/// (mutual TLS); on a client, the server's certificate, unless verification was
/// skipped with `dangerous_skip_server_verification` (then there is none, since nothing
/// was verified). See [`Conn::peer_certificates`](crate::Conn::peer_certificates).
///
/// ```
/// use msg_transport::{CertName, PeerCertificates};
///
/// # fn check(certs: &PeerCertificates) {
/// // Does the client hold the name "alice"?
/// if certs.names().contains(b"alice") {
///     println!("alice, as her certificate says");
/// }
/// for name in certs.names().iter() {
///     if let CertName::Uri(uri) = name {
///         println!("spiffe id or other uri: {uri}");
///     }
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificates {
    chain: Vec<Bytes>,
    names: CertNames,
}

impl PeerCertificates {
    /// A chain (end-entity certificate first, then the intermediates the peer sent),
    /// DER-encoded, with the names of its first certificate.
    ///
    /// Returns `None` for an empty chain. Names that cannot be parsed are left out: a
    /// certificate whose names cannot be read holds no name, so it matches no identity.
    #[cfg(any(feature = "tls", feature = "quic"))]
    pub(crate) fn from_chain(chain: Vec<Bytes>) -> Option<PeerCertificates> {
        let names = CertNames::parse(chain.first()?);
        Some(PeerCertificates { chain, names })
    }

    /// The chain as the peer sent it, DER-encoded, its end-entity certificate first.
    pub fn chain(&self) -> &[Bytes] {
        &self.chain
    }

    /// The end-entity (leaf) certificate, DER-encoded: the one that names the peer.
    pub fn end_entity(&self) -> &Bytes {
        // `from_chain` refuses an empty chain.
        &self.chain[0]
    }

    /// The names in the end-entity certificate.
    pub fn names(&self) -> &CertNames {
        &self.names
    }
}

impl fmt::Debug for PeerCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCertificates")
            .field("certificates", &self.chain.len())
            .field("names", &self.names)
            .finish()
    }
}

/// One name of a certificate: a subject alternative name, or the subject's common name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum CertName {
    /// A DNS name (`dNSName`), as written in the certificate (a wildcard stays
    /// `*.example.com`).
    Dns(String),
    /// An IP address (`iPAddress`).
    Ip(IpAddr),
    /// A URI (`uniformResourceIdentifier`), such as a SPIFFE id.
    Uri(String),
    /// An email address (`rfc822Name`).
    Email(String),
    /// A common name (`CN`) of the subject.
    CommonName(String),
}

impl CertName {
    /// Whether `identity`, the bytes a peer announces, is this name.
    ///
    /// The match is exact, with no wildcard: a DNS name matches the same name (ASCII
    /// case ignored, as DNS does), an IP address its text form (`10.0.0.7`, `::1`),
    /// and a URI, an email address or a common name the same string, byte for byte.
    /// A wildcard DNS name matches only the identity `*.example.com` itself, so that a
    /// certificate for many hosts cannot stand for any one of them.
    pub fn matches(&self, identity: &[u8]) -> bool {
        let Ok(identity) = std::str::from_utf8(identity) else {
            return false;
        };
        match self {
            CertName::Dns(name) => name.eq_ignore_ascii_case(identity),
            CertName::Ip(ip) => identity.parse::<IpAddr>().is_ok_and(|i| i == *ip),
            CertName::Uri(name) | CertName::Email(name) | CertName::CommonName(name) => {
                name == identity
            }
        }
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertName::Dns(name) => write!(f, "dns:{name}"),
            CertName::Ip(ip) => write!(f, "ip:{ip}"),
            CertName::Uri(uri) => write!(f, "uri:{uri}"),
            CertName::Email(email) => write!(f, "email:{email}"),
            CertName::CommonName(cn) => write!(f, "cn:{cn}"),
        }
    }
}

/// The names of a certificate: its subject alternative names, in the certificate's
/// order, then its subject's common names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertNames {
    names: Vec<CertName>,
}

impl CertNames {
    /// Every name, subject alternative names first.
    pub fn iter(&self) -> std::slice::Iter<'_, CertName> {
        self.names.iter()
    }

    /// Whether no name could be read.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `identity` is one of the names (see [`CertName::matches`]).
    pub fn contains(&self, identity: &[u8]) -> bool {
        self.names.iter().any(|name| name.matches(identity))
    }

    /// The DNS names.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|name| match name {
            CertName::Dns(dns) => Some(dns.as_str()),
            _ => None,
        })
    }

    /// The IP addresses.
    pub fn ip_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.names.iter().filter_map(|name| match name {
            CertName::Ip(ip) => Some(*ip),
            _ => None,
        })
    }

    /// The URIs.
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|name| match name {
            CertName::Uri(uri) => Some(uri.as_str()),
            _ => None,
        })
    }

    /// The subject's common names (usually one).
    pub fn common_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().filter_map(|name| match name {
            CertName::CommonName(cn) => Some(cn.as_str()),
            _ => None,
        })
    }

    /// The names of the DER certificate `der`. What cannot be parsed is left out
    /// (logged at debug level): the certificate was verified by rustls already, so
    /// this only happens with names this parser does not read (a `CN` that is not a
    /// string, say), and a name left out can only make a match fail.
    #[cfg(any(feature = "tls", feature = "quic"))]
    fn parse(der: &[u8]) -> CertNames {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

        let mut names = Vec::new();
        let cert = match X509Certificate::from_der(der) {
            Ok((_, cert)) => cert,
            Err(error) => {
                tracing::debug!(%error, "cannot parse the names of a peer certificate");
                return CertNames { names };
            }
        };
        match cert.subject_alternative_name() {
            Ok(Some(san)) => {
                for general in &san.value.general_names {
                    let name = match general {
                        GeneralName::DNSName(dns) => CertName::Dns((*dns).to_owned()),
                        GeneralName::URI(uri) => CertName::Uri((*uri).to_owned()),
                        GeneralName::RFC822Name(email) => CertName::Email((*email).to_owned()),
                        GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
                            Some(ip) => CertName::Ip(ip),
                            None => continue,
                        },
                        _ => continue,
                    };
                    names.push(name);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "cannot parse the alternative names of a peer certificate");
            }
        }
        for cn in cert.subject().iter_common_name() {
            match cn.as_str() {
                Ok(cn) => names.push(CertName::CommonName(cn.to_owned())),
                Err(error) => {
                    tracing::debug!(%error, "cannot read a common name of a peer certificate");
                }
            }
        }
        CertNames { names }
    }
}

impl<'a> IntoIterator for &'a CertNames {
    type Item = &'a CertName;
    type IntoIter = std::slice::Iter<'a, CertName>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// An `iPAddress` name: 4 bytes for IPv4, 16 for IPv6 (RFC 5280 §4.2.1.6).
#[cfg(any(feature = "tls", feature = "quic"))]
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(all(test, any(feature = "tls", feature = "quic")))]
mod tests {
    use super::*;
    use crate::dev;

    fn names_of(cert: &crate::Certificate) -> CertNames {
        CertNames::parse(cert.der())
    }

    #[test]
    fn names_come_from_alternative_names_and_the_common_name() {
        let cert = dev::self_signed(["alice.example", "10.0.0.7", "::1"]).unwrap();
        let names = names_of(&cert.certificate());
        assert_eq!(names.dns_names().collect::<Vec<_>>(), ["alice.example"]);
        assert_eq!(
            names.ip_addresses().collect::<Vec<_>>(),
            [
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(names.common_names().collect::<Vec<_>>(), ["alice.example"]);
        assert!(names.contains(b"alice.example"));
        assert!(names.contains(b"ALICE.example"), "dns is case-insensitive");
        assert!(names.contains(b"10.0.0.7"));
        assert!(
            names.contains(b"0:0:0:0:0:0:0:1"),
            "ips compare as addresses"
        );
        assert!(!names.contains(b"bob.example"));
        assert!(!names.contains(b"alice.example.evil"));
        assert!(!names.contains(b"\xff"), "not utf-8: no match");
    }

    #[test]
    fn a_client_certificate_is_named_by_its_common_name() {
        let ca = dev::DevCa::new("test ca").unwrap();
        let client = ca.client_cert("alice").unwrap();
        let names = names_of(&client.certificate());
        assert_eq!(
            names.iter().cloned().collect::<Vec<_>>(),
            [CertName::CommonName("alice".into())]
        );
        assert!(names.contains(b"alice"));
        assert!(!names.contains(b"Alice"), "common names match exactly");
    }

    #[test]
    fn wildcards_match_only_themselves() {
        let name = CertName::Dns("*.example.com".into());
        assert!(!name.matches(b"alice.example.com"));
        assert!(name.matches(b"*.example.com"));
    }

    #[test]
    fn garbage_has_no_names_and_no_chain_is_no_certificates() {
        assert!(CertNames::parse(b"not a certificate").is_empty());
        assert!(PeerCertificates::from_chain(Vec::new()).is_none());
        let certs = PeerCertificates::from_chain(vec![Bytes::from_static(b"junk")]).unwrap();
        assert!(certs.names().is_empty());
        assert!(!certs.names().contains(b"junk"));
    }

    #[test]
    fn uris_and_emails_are_names_too() {
        let names = CertNames {
            names: vec![
                CertName::Uri("spiffe://example.org/alice".into()),
                CertName::Email("alice@example.org".into()),
            ],
        };
        assert!(names.contains(b"spiffe://example.org/alice"));
        assert!(names.contains(b"alice@example.org"));
        assert_eq!(
            names.uris().collect::<Vec<_>>(),
            ["spiffe://example.org/alice"]
        );
    }
}
