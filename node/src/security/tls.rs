//! TLS for the SSL and SASL_SSL listeners: rustls (TLS 1.2 and 1.3 only, ring as the crypto
//! provider) with the PEM files of `--ssl-cert`/`--ssl-key`, client certificates checked
//! against `--ssl-ca`. The server config sits behind an atomic pointer: the main thread
//! re-reads the files when they change ([`TlsContext::reload_if_changed`]), and each new
//! connection takes the config current when it is accepted.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::security::{ClientAuth, TlsFiles};

/// The TLS listeners' server config and where it came from.
pub struct TlsContext {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    /// The files' modification times when last loaded.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext").field("files", &self.files).finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TlsContext {
    /// Loads the files (on the main thread, at start-up): an unreadable or invalid file is
    /// a start-up error saying which.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        let stamps = Self::stamps_of(files);
        let config = build(files)?;
        Ok(Self {
            files: files.clone(),
            config: ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps),
        })
    }

    fn stamps_of(files: &TlsFiles) -> Vec<Option<SystemTime>> {
        [Some(&files.cert), Some(&files.key), files.ca.as_ref()]
            .into_iter()
            .map(|p| p.and_then(|p| modified(p)))
            .collect()
    }

    /// The acceptor for a connection accepted now.
    pub fn acceptor(&self) -> futures_rustls::TlsAcceptor {
        futures_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Re-reads the files if any changed since they were loaded (called from the main thread,
    /// never a shard). `Some(Err)` when the new files are invalid: the old config stays.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = Self::stamps_of(&self.files);
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if *stamps == now {
            return None;
        }
        *stamps = now;
        Some(build(&self.files).map(|c| self.config.store(Arc::new(c))))
    }
}

fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let (certs, key) = cert_and_key(files)?;
    // ring (no cmake or Go toolchain, unlike aws-lc-rs); rustls deprecates its provider only
    // for lacking post-quantum key exchange, which no Kafka client offers yet.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (files.client_auth, &files.ca) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let roots = roots_of(ca)?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if mode == ClientAuth::Requested {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier =
                verifier.build().map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("--ssl-cert/--ssl-key do not make a pair: {e}"))
}

/// The TLS a broker's replica fetchers use on an SSL inter-broker listener: other brokers'
/// certificates must chain to `--ssl-ca`; this broker presents its own certificate (so that
/// an mTLS listener knows it by its subject, as Kafka brokers do with their keystore).
pub fn client_config(files: &TlsFiles) -> Result<odradek_client::compio::Tls, String> {
    let Some(ca) = &files.ca else {
        return Err(
            "an SSL inter-broker listener needs --ssl-ca (the CA of the brokers' certificates)"
                .into(),
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("--ssl-cert {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--ssl-key {}: {e}", files.key.display()))?;
    #[allow(deprecated)] // see `build`
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("--ssl-cert/--ssl-key as a client certificate: {e}"))?;
    Ok(odradek_client::compio::Tls { config: Arc::new(config) })
}

/// Mutual TLS for the controller port: accepted connections must present a certificate that
/// chains to `--ssl-ca`, outgoing ones present this node's and check the peer's.
pub fn quorum_tls(files: &TlsFiles) -> Result<odradek_controller::QuorumTls, String> {
    let ca = files.ca.as_ref().ok_or("the controller's TLS needs --ssl-ca")?;
    let roots = Arc::new(roots_of(ca)?);
    #[allow(deprecated)] // see `build`
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
    let (certs, key) = cert_and_key(files)?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| format!("--ssl-cert/--ssl-key do not make a pair: {e}"))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("--ssl-cert/--ssl-key as a client certificate: {e}"))?;
    Ok(odradek_controller::QuorumTls { server: Arc::new(server), client: Arc::new(client) })
}

fn roots_of(ca: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?
    {
        let cert = cert.map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
    }
    Ok(roots)
}

fn cert_and_key(
    files: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("--ssl-cert {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--ssl-cert {}: no certificate in the file", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--ssl-key {}: {e}", files.key.display()))?;
    Ok((certs, key))
}

/// Kafka's principal for a client certificate: `User:` and the subject's distinguished name
/// as RFC 2253 writes it (most specific first: `CN=alice,O=example`).
pub fn principal_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let mut rdns: Vec<_> = subject.iter().collect();
    rdns.reverse();
    let rdns: Vec<String> = rdns
        .into_iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let key = x509_parser::objects::oid2abbrev(
                        atv.attr_type(),
                        x509_parser::objects::oid_registry(),
                    )
                    .map(str::to_owned)
                    .unwrap_or_else(|_| atv.attr_type().to_id_string());
                    let value = atv.as_str().unwrap_or("");
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(format!("User:{}", rdns.join(",")))
}
