//! Certificates: the chains and keys a configuration names, read and checked when it is built
//! (at start and on each reload), so a handshake never meets a file that does not load.

use std::path::PathBuf;
use std::sync::Arc;

use edge_config::edge::TlsFiles;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CryptoProvider, RusTlsError};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read as PEM.
    #[error("{}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{}: no certificate in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No crypto provider is installed (a build without one).
    #[error("no TLS crypto provider installed")]
    NoProvider,
    /// The private key is of a kind rustls cannot sign with.
    #[error("{}: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        source: RusTlsError,
    },
    /// The key is not the certificate's.
    #[error("{} does not match {}: {source}", key.display(), cert.display())]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// What rustls said.
        source: RusTlsError,
    },
}

/// Reads a certificate chain and its private key, and checks that they belong together.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, CertError> {
    pingora::tls::install_default_crypto_provider();
    let pem_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| CertError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(pem_err(&files.cert))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem_err(&files.key))?;
    let provider = CryptoProvider::get_default().ok_or(CertError::NoProvider)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| CertError::Key {
            path: files.key.clone(),
            source,
        })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|source| CertError::Mismatch {
        key: files.key.clone(),
        cert: files.cert.clone(),
        source,
    })?;
    Ok(Arc::new(ck))
}

/// The certificates of one configuration.
#[derive(Default)]
pub struct Certs {
    /// Each listener's default certificate (`None` for plain listeners), by listener index.
    pub listeners: Vec<Option<Arc<CertifiedKey>>>,
    /// Each site's certificate, by site index.
    pub sites: Vec<Option<Arc<CertifiedKey>>>,
}
