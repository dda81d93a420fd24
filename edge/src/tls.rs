//! TLS termination: certificates chosen by SNI. A site's own certificate serves its hosts; the
//! listener's certificate serves everything else. Both are read from the configuration in
//! force at each handshake, so a reload replaces them without a restart.

use std::sync::Arc;

use edge_config::edge::TlsFiles;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::proxy::EdgeState;
use crate::router::normalize_host;

/// Reads a certificate chain and its private key, and checks that they belong together.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    pingora::tls::install_default_crypto_provider();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in the file",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider installed".to_string())?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| {
        format!(
            "{} does not match {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    Ok(Arc::new(ck))
}

/// The certificates of the configuration in force.
#[derive(Default)]
pub struct Certs {
    /// Each listener's default certificate (`None` for plain listeners), by listener index.
    pub listeners: Vec<Option<Arc<CertifiedKey>>>,
    /// Each site's certificate, by site index.
    pub sites: Vec<Option<Arc<CertifiedKey>>>,
}

/// Picks the certificate for a handshake on one listener.
pub struct SniResolver {
    state: Arc<EdgeState>,
    listener: usize,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("listener", &self.listener)
            .finish()
    }
}

impl SniResolver {
    /// A resolver for the listener at `listener` in the configuration.
    pub fn new(state: Arc<EdgeState>, listener: usize) -> Self {
        SniResolver { state, listener }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.state.live.load();
        let by_site = hello
            .server_name()
            .and_then(normalize_host)
            .and_then(|h| live.router.route(&h))
            .and_then(|site| live.certs.sites.get(site).cloned().flatten());
        by_site.or_else(|| live.certs.listeners.get(self.listener).cloned().flatten())
    }
}
