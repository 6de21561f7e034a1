//! Certificates, keys and the TLS settings shared by the TLS and QUIC transports.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tracing::warn;

use crate::TransportError;

/// The ALPN protocol id msg speaks over TLS and QUIC.
pub const ALPN: &[u8] = b"msg/1";

/// An X.509 certificate in DER form.
///
/// Load one from PEM with [`Certificate::from_pem_file`], or make one for development
/// with [`dev::self_signed`](crate::dev::self_signed).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: CertificateDer<'static>,
}

impl Certificate {
    /// Wraps a DER-encoded certificate. The bytes are parsed when a configuration is
    /// built, not here.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Self {
        Certificate {
            der: CertificateDer::from(der.into()),
        }
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Every `CERTIFICATE` block in a PEM text, in order (a chain is leaf first).
    ///
    /// Other PEM blocks, such as keys, are skipped.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the text is not valid PEM or holds no
    /// certificate.
    pub fn from_pem(pem: &str) -> Result<Vec<Certificate>, TransportError> {
        collect_certs(CertificateDer::pem_slice_iter(pem.as_bytes()), "pem text")
    }

    /// Every `CERTIFICATE` block in a PEM file, in order (a chain is leaf first).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] naming the file when it cannot be read, is not valid
    /// PEM, or holds no certificate.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Vec<Certificate>, TransportError> {
        let path = path.as_ref();
        let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
            TransportError::config(format!("certificates in {}", path.display()), e)
        })?;
        collect_certs(iter, &path.display().to_string())
    }

    pub(crate) fn to_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }
}

fn collect_certs(
    iter: impl Iterator<Item = Result<CertificateDer<'static>, rustls_pki_types::pem::Error>>,
    source: &str,
) -> Result<Vec<Certificate>, TransportError> {
    let certs = iter
        .map(|der| der.map(|der| Certificate { der }))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::config(format!("certificates in {source}"), e))?;
    if certs.is_empty() {
        return Err(TransportError::config(
            format!("certificates in {source}"),
            "no CERTIFICATE block found",
        ));
    }
    Ok(certs)
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// A private key in DER form (PKCS#8, PKCS#1 or SEC1).
///
/// Its `Debug` output does not show the key.
pub struct PrivateKey {
    der: PrivateKeyDer<'static>,
}

impl PrivateKey {
    /// Wraps a DER-encoded PKCS#8 private key, the form [`dev`](crate::dev) produces.
    pub fn from_pkcs8_der(der: impl Into<Vec<u8>>) -> Self {
        PrivateKey {
            der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.into())),
        }
    }

    /// The key's DER bytes.
    pub fn der(&self) -> &[u8] {
        self.der.secret_der()
    }

    /// The first private key in a PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the text is not valid PEM or holds no key.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, TransportError> {
        PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map(|der| PrivateKey { der })
            .map_err(|e| TransportError::config("private key in pem text", e))
    }

    /// The first private key in a PEM file.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] naming the file when it cannot be read, is not valid
    /// PEM, or holds no key.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<PrivateKey, TransportError> {
        let path = path.as_ref();
        PrivateKeyDer::from_pem_file(path)
            .map(|der| PrivateKey { der })
            .map_err(|e| TransportError::config(format!("private key in {}", path.display()), e))
    }

    pub(crate) fn to_der(&self) -> PrivateKeyDer<'static> {
        self.der.clone_key()
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey { der: self.to_der() }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// The server side of TLS and QUIC: the certificate a listener presents, and whether
/// clients must present one too.
///
/// ```
/// # fn main() -> Result<(), msg_transport::TransportError> {
/// use msg_transport::{dev, TlsServerConfig};
///
/// let ca = dev::DevCa::new("example ca")?;
/// let server = ca.server_cert(["localhost"])?;
/// let mut config = TlsServerConfig::new(server.cert_chain(), server.private_key());
/// config.require_client_auth(vec![ca.certificate()]); // mutual TLS
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    cert_chain: Vec<Certificate>,
    key: PrivateKey,
    client_auth_roots: Option<Vec<Certificate>>,
}

impl TlsServerConfig {
    /// A server presenting `cert_chain` (leaf first) with the leaf's private `key`.
    ///
    /// Clients are not asked for certificates unless
    /// [`require_client_auth`](Self::require_client_auth) is set.
    pub fn new(cert_chain: Vec<Certificate>, key: PrivateKey) -> Self {
        TlsServerConfig {
            cert_chain,
            key,
            client_auth_roots: None,
        }
    }

    /// Requires every client to present a certificate that chains to one of `roots`
    /// (mutual TLS). Clients without one, or with an untrusted one, fail the handshake
    /// and are never handed to `accept`.
    ///
    /// Default: client certificates are not requested.
    pub fn require_client_auth(&mut self, roots: Vec<Certificate>) -> &mut Self {
        self.client_auth_roots = Some(roots);
        self
    }

    /// Builds the rustls configuration, with msg's crypto provider (aws-lc-rs), the
    /// given protocol versions and msg's ALPN id.
    pub(crate) fn build(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<rustls::ServerConfig, TransportError> {
        const WHAT: &str = "tls server configuration";
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TransportError::config(WHAT, e))?;
        let builder = match &self.client_auth_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let store = root_store(roots, "client authentication roots")?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
                        .build()
                        .map_err(|e| TransportError::config(WHAT, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let chain = self.cert_chain.iter().map(Certificate::to_der).collect();
        let mut config = builder
            .with_single_cert(chain, self.key.to_der())
            .map_err(|e| TransportError::config(WHAT, e))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// The client side of TLS and QUIC: which servers to trust, and the certificate to
/// present for mutual TLS.
///
/// The server's certificate is verified against the roots added with
/// [`add_root`](Self::add_root) and the server name, which defaults to the endpoint's
/// host (an IP host is checked against the certificate's IP addresses). There are no
/// built-in roots: a configuration with none fails to build, unless verification is
/// switched off with [`dangerous_skip_server_verification`](Self::dangerous_skip_server_verification).
///
/// ```
/// # fn main() -> Result<(), msg_transport::TransportError> {
/// use msg_transport::{dev, TlsClientConfig};
///
/// let server = dev::self_signed(["localhost"])?;
/// let mut config = TlsClientConfig::new();
/// config.add_root(server.certificate());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct TlsClientConfig {
    roots: Vec<Certificate>,
    identity: Option<(Vec<Certificate>, PrivateKey)>,
    server_name: Option<String>,
    skip_verification: bool,
}

impl TlsClientConfig {
    /// A client that trusts nothing yet; add roots with [`add_root`](Self::add_root).
    pub fn new() -> Self {
        TlsClientConfig::default()
    }

    /// Trusts servers whose certificate chains to `root` (a CA certificate, or a
    /// self-signed server certificate itself).
    pub fn add_root(&mut self, root: Certificate) -> &mut Self {
        self.roots.push(root);
        self
    }

    /// Presents `cert_chain` (leaf first) and `key` to servers that ask for a client
    /// certificate (mutual TLS). Default: no client certificate.
    pub fn client_auth(&mut self, cert_chain: Vec<Certificate>, key: PrivateKey) -> &mut Self {
        self.identity = Some((cert_chain, key));
        self
    }

    /// Verifies the server's certificate against `name` instead of the endpoint's host,
    /// e.g. to connect to `tls://10.0.0.7:5556` and expect `broker.internal`.
    ///
    /// An IP address string is checked against the certificate's IP addresses. Also
    /// sent as SNI. Default: the endpoint's host.
    pub fn server_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.server_name = Some(name.into());
        self
    }

    /// **Dangerous:** accepts any server certificate, trusted or not, for any name.
    ///
    /// The connection is still encrypted, but anyone on the path can impersonate the
    /// server. For development against throwaway certificates only; a warning is
    /// logged when a configuration with this option is built. Default: off.
    pub fn dangerous_skip_server_verification(&mut self) -> &mut Self {
        self.skip_verification = true;
        self
    }

    /// Whether this configuration accepts any server certificate.
    pub(crate) fn skips_verification(&self) -> bool {
        self.skip_verification
    }

    /// Builds the rustls configuration, with msg's crypto provider (aws-lc-rs), the
    /// given protocol versions and msg's ALPN id, plus the server name override if any.
    pub(crate) fn build(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<(rustls::ClientConfig, Option<ServerName<'static>>), TransportError> {
        const WHAT: &str = "tls client configuration";
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TransportError::config(WHAT, e))?;
        let builder = if self.skip_verification {
            warn!(
                "tls server certificate verification is disabled \
                 (dangerous_skip_server_verification): servers are not authenticated"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipServerVerification { provider }))
        } else {
            if self.roots.is_empty() {
                return Err(TransportError::config(
                    WHAT,
                    "no root certificates to verify servers with (add one with TlsClientConfig::add_root)",
                ));
            }
            builder.with_root_certificates(root_store(&self.roots, "root certificates")?)
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(
                    chain.iter().map(Certificate::to_der).collect(),
                    key.to_der(),
                )
                .map_err(|e| TransportError::config(WHAT, e))?,
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        let server_name =
            match &self.server_name {
                None => None,
                Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| {
                    TransportError::config(format!("tls server name \"{name}\""), e)
                })?),
            };
        Ok((config, server_name))
    }
}

/// The one rustls crypto provider of msg, for TLS and QUIC alike: aws-lc-rs,
/// with its default key exchange groups, post-quantum hybrid X25519MLKEM768 first
/// (then P-384, X25519 and P-256 for peers without it).
///
/// Why aws-lc-rs and not ring is in the book's security chapter: ring has no
/// post-quantum key exchange, and rustls deprecates its provider for that.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn root_store(roots: &[Certificate], what: &str) -> Result<RootCertStore, TransportError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root.to_der())
            .map_err(|e| TransportError::config(what, e))?;
    }
    Ok(store)
}

/// Accepts every server certificate but still checks handshake signatures, so the
/// session keys at least belong to whoever holds the presented certificate's key.
#[derive(Debug)]
struct SkipServerVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TLS and QUIC build their rustls configurations here, so both offer the
    /// post-quantum hybrid first (the TLS test negotiates it end to end; quinn
    /// does not tell which group a connection settled on).
    #[test]
    fn both_sides_prefer_post_quantum_key_exchange_for_tls_and_quic() {
        let cert = crate::dev::self_signed(["127.0.0.1"]).unwrap();
        let mut client = TlsClientConfig::new();
        client.add_root(cert.certificate());
        for versions in [rustls::DEFAULT_VERSIONS, &[&rustls::version::TLS13]] {
            let (client, _) = client.build(versions).unwrap();
            let server = cert.server_config().build(versions).unwrap();
            for provider in [client.crypto_provider(), server.crypto_provider()] {
                let first = provider.kx_groups.first().map(|g| g.name());
                assert_eq!(first, Some(rustls::NamedGroup::X25519MLKEM768));
            }
        }
    }
}
