//! TLS for the tests' own servers: a throw-away certificate authority (written to a PEM file the
//! server under test is told to trust) and a leaf certificate for `localhost` and `127.0.0.1`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::{TlsAcceptor, rustls};

pub struct TestTls {
    /// Accepts TLS connections with the leaf certificate.
    pub acceptor: TlsAcceptor,
    /// The CA's certificate, in PEM.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestTls {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mcpauth test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_file,
            _dir: dir,
        }
    }
}
