//! Certificates and keys load from PEM files, and bad files are reported by name.

use crate::common::{chain, echo_sizes, spawn_echo_server};
use msg_transport::{
    Certificate, Listener, PrivateKey, Tls, TlsClientConfig, TlsOptions, TlsServerConfig,
    Transport, dev,
};

#[tokio::test]
async fn pem_files_from_dev_certificates_work_for_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev::DevCa::new("pem ca").unwrap();
    let server = ca.server_cert(["127.0.0.1"]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("server.pem"), server.cert_pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), server.key_pem()).unwrap();

    let chain_from_file = Certificate::from_pem_file(dir.path().join("server.pem")).unwrap();
    assert_eq!(chain_from_file, vec![server.certificate()]);
    let key = PrivateKey::from_pem_file(dir.path().join("server.key")).unwrap();
    assert_eq!(key.der(), server.key_der());
    let roots = Certificate::from_pem_file(dir.path().join("ca.pem")).unwrap();

    let mut client = TlsClientConfig::new();
    for root in roots {
        client.add_root(root);
    }
    let mut options = TlsOptions::new();
    options
        .server(TlsServerConfig::new(chain_from_file, key))
        .client(client);
    let tls = Tls::new(&options).unwrap();
    let listener = tls
        .bind(&"tls://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = listener.local_endpoint().clone();
    spawn_echo_server(listener);
    let (conn, _) = tls.connect(&endpoint).await.unwrap();
    echo_sizes(conn, &[42], 1).await;
}

#[test]
fn pem_text_with_a_chain_keeps_the_order() {
    let ca = dev::DevCa::new("chain ca").unwrap();
    let leaf = ca.server_cert(["localhost"]).unwrap();
    let text = format!("{}\n{}", leaf.cert_pem(), ca.cert_pem());
    let certs = Certificate::from_pem(&text).unwrap();
    assert_eq!(certs, leaf.cert_chain());
    assert_eq!(certs[1], ca.certificate());
}

#[test]
fn missing_file_is_named_in_the_error() {
    let error = Certificate::from_pem_file("/nonexistent/msg/cert.pem").unwrap_err();
    assert!(error.is_config());
    let text = chain(&error);
    assert!(text.contains("/nonexistent/msg/cert.pem"), "{text}");
    let error = PrivateKey::from_pem_file("/nonexistent/msg/key.pem").unwrap_err();
    assert!(
        chain(&error).contains("/nonexistent/msg/key.pem"),
        "{}",
        chain(&error)
    );
}

#[test]
fn file_without_certificates_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key-only.pem");
    let cert = dev::self_signed(["x"]).unwrap();
    std::fs::write(&path, cert.key_pem()).unwrap();
    let error = Certificate::from_pem_file(&path).unwrap_err();
    let text = chain(&error);
    assert!(text.contains("key-only.pem"), "{text}");
    assert!(text.contains("no CERTIFICATE block"), "{text}");

    let error = PrivateKey::from_pem(cert.cert_pem()).unwrap_err();
    assert!(error.is_config(), "{}", chain(&error));
}

#[test]
fn private_key_debug_hides_the_key() {
    let cert = dev::self_signed(["x"]).unwrap();
    assert_eq!(format!("{:?}", cert.private_key()), "PrivateKey(..)");
}

#[test]
fn invalid_dev_certificate_name_is_an_error() {
    let error = dev::self_signed(["nön-ascii.example"]).unwrap_err();
    assert!(error.is_config(), "{}", chain(&error));
}
