//! Development certificates made on the fly with rcgen.
//!
//! For tests, examples and local development only: the keys live in memory (or
//! wherever you write the PEM strings), and a self-signed certificate proves nothing to
//! anyone who has not been handed it out of band.
//!
//! - [`self_signed`] makes one certificate for some names; a client trusts it by adding
//!   the certificate itself as a root.
//! - [`DevCa`] is a tiny certificate authority that signs server and client
//!   certificates, which is what mutual TLS needs: the server trusts the CA, not each
//!   client.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use msg_transport::{dev, TlsClientConfig, TlsServerConfig};
//!
//! let cert = dev::self_signed(["localhost", "127.0.0.1"])?;
//! let server = TlsServerConfig::new(cert.cert_chain(), cert.private_key());
//! let mut client = TlsClientConfig::new();
//! client.add_root(cert.certificate());
//! // The PEM forms are for files other programs read.
//! assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! # let _ = (server, TlsServerConfig::new(cert.cert_chain(), cert.private_key()));
//! # Ok(()) }
//! ```

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::{Certificate, PrivateKey, TlsServerConfig, TransportError};

/// A generated certificate with its private key, as DER and as PEM.
#[derive(Clone)]
pub struct DevCert {
    cert: Certificate,
    /// The issuing CA's certificate, when not self-signed.
    issuer: Option<Certificate>,
    key: PrivateKey,
    cert_pem: String,
    key_pem: String,
}

impl DevCert {
    /// The certificate itself.
    pub fn certificate(&self) -> Certificate {
        self.cert.clone()
    }

    /// The chain to present: the certificate, then its CA's certificate if a
    /// [`DevCa`] signed it.
    pub fn cert_chain(&self) -> Vec<Certificate> {
        std::iter::once(self.cert.clone())
            .chain(self.issuer.clone())
            .collect()
    }

    /// The private key (PKCS#8).
    pub fn private_key(&self) -> PrivateKey {
        self.key.clone()
    }

    /// The certificate's DER bytes.
    pub fn cert_der(&self) -> &[u8] {
        self.cert.der()
    }

    /// The private key's DER bytes (PKCS#8).
    pub fn key_der(&self) -> &[u8] {
        self.key.der()
    }

    /// The certificate as PEM (`-----BEGIN CERTIFICATE-----`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A [`TlsServerConfig`] presenting this certificate, without client
    /// authentication.
    pub fn server_config(&self) -> TlsServerConfig {
        TlsServerConfig::new(self.cert_chain(), self.private_key())
    }
}

impl fmt::Debug for DevCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCert")
            .field("cert", &self.cert)
            .field("ca_signed", &self.issuer.is_some())
            .finish_non_exhaustive()
    }
}

fn rcgen_error(what: &str) -> impl FnOnce(rcgen::Error) -> TransportError + '_ {
    move |e| TransportError::config(what, e)
}

/// Makes a self-signed certificate valid for `names`.
///
/// Each name is a DNS name (`"localhost"`) or an IP address (`"127.0.0.1"`, `"::1"`);
/// IP addresses become IP subject alternative names, so `tls://127.0.0.1:port`
/// verifies. The first name is also the subject's common name. The key is ECDSA P-256.
///
/// # Errors
///
/// [`TransportError::Config`] when a name is not a valid DNS name or IP address, or
/// key generation fails.
pub fn self_signed<I, S>(names: I) -> Result<DevCert, TransportError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    const WHAT: &str = "development certificate";
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    let mut params = CertificateParams::new(names.clone()).map_err(rcgen_error(WHAT))?;
    params.distinguished_name = common_name(names.first().map_or("msg dev", String::as_str));
    let key = KeyPair::generate().map_err(rcgen_error(WHAT))?;
    let cert = params.self_signed(&key).map_err(rcgen_error(WHAT))?;
    Ok(DevCert {
        cert: Certificate::from_der(cert.der().to_vec()),
        issuer: None,
        key: PrivateKey::from_pkcs8_der(key.serialize_der()),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A throwaway certificate authority that signs server and client certificates.
///
/// Trust [`certificate`](Self::certificate) on one side and present a certificate it
/// signed on the other. Both server and client certificates carry the CA's
/// certificate in their [`cert_chain`](DevCert::cert_chain).
pub struct DevCa {
    cert: Certificate,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DevCa {
    /// Makes a new CA whose subject common name is `name`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when key generation or signing fails.
    pub fn new(name: &str) -> Result<DevCa, TransportError> {
        const WHAT: &str = "development ca";
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(rcgen_error(WHAT))?;
        let cert = params.self_signed(&key).map_err(rcgen_error(WHAT))?;
        Ok(DevCa {
            cert: Certificate::from_der(cert.der().to_vec()),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, to add as a root on the verifying side.
    pub fn certificate(&self) -> Certificate {
        self.cert.clone()
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a server certificate valid for `names` (DNS names or IP addresses).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when a name is invalid or signing fails.
    pub fn server_cert<I, S>(&self, names: I) -> Result<DevCert, TransportError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        const WHAT: &str = "development server certificate";
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let mut params = CertificateParams::new(names.clone()).map_err(rcgen_error(WHAT))?;
        params.distinguished_name = common_name(names.first().map_or("msg server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, WHAT)
    }

    /// Signs a client certificate whose subject common name is `name`, for mutual TLS.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when signing fails.
    pub fn client_cert(&self, name: &str) -> Result<DevCert, TransportError> {
        const WHAT: &str = "development client certificate";
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, WHAT)
    }

    fn sign(&self, mut params: CertificateParams, what: &str) -> Result<DevCert, TransportError> {
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(rcgen_error(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_error(what))?;
        Ok(DevCert {
            cert: Certificate::from_der(cert.der().to_vec()),
            issuer: Some(self.cert.clone()),
            key: PrivateKey::from_pkcs8_der(key.serialize_der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}
