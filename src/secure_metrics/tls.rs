//! The metrics endpoint's serving certificate: a certificate and key mounted from a
//! Secret (cert-manager, OpenShift's service CA), read again whenever the files change,
//! or a self-signed one when none is mounted.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink to a new directory, so a
//! change shows as a new file identity (device, inode), size or modification time of
//! either file; it is looked for before every new connection. A pair that does not load
//! (half written, key not matching) leaves the previous certificate in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSource {
    /// Directory of the mounted certificate; `None`: self-signed.
    pub dir: Option<PathBuf>,
    /// File name of the PEM certificate chain in `dir` (`tls.crt`).
    pub cert_name: String,
    /// File name of the PEM private key in `dir` (`tls.key`).
    pub key_name: String,
}

impl CertSource {
    fn paths(&self) -> Option<(PathBuf, PathBuf)> {
        self.dir
            .as_ref()
            .map(|d| (d.join(&self.cert_name), d.join(&self.key_name)))
    }
}

/// A certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error(
        "{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----, as in a kubernetes.io/tls Secret's tls.crt)"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported
    /// key type).
    #[error("the certificate {cert} and key {key} cannot serve TLS")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The self-signed certificate could not be made.
    #[error("cannot generate a self-signed certificate")]
    SelfSigned(#[from] rcgen::Error),
    /// rustls refused the self-signed pair (cannot happen with rcgen's output).
    #[error("cannot serve TLS with the self-signed certificate")]
    Config(#[source] rustls::Error),
}

/// Device, inode, length and modification time of one file: a kubelet update of a
/// Secret volume swaps a symlink, so a new file has a new inode even within a second.
type FileStamp = (u64, u64, u64, Option<std::time::SystemTime>);

/// What identifies the content of the two files without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    files: [Option<FileStamp>; 2],
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.len(), m.modified().ok()))
    };
    Stamp {
        files: [one(cert), one(key)],
    }
}

/// Where the certificate in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The mounted files.
    Mounted,
    /// Generated at start (no files, or none yet).
    SelfSigned,
}

struct Current {
    stamp: Option<Stamp>,
    acceptor: TlsAcceptor,
    origin: Origin,
}

/// The certificate in use, reloaded when the mounted files change.
pub struct ServingCerts {
    source: CertSource,
    current: tokio::sync::Mutex<Current>,
}

/// The rustls server configuration for one certificate chain and key: ring, TLS 1.2
/// and 1.3, HTTP/1.1 only (as controller-runtime, which turns HTTP/2 off by default).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A self-signed certificate (ECDSA P-256) for `names`, as PEM (certificate, key).
pub fn self_signed_pem(names: &[String]) -> Result<(String, String), rcgen::Error> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

fn acceptor_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert: &Path,
    key: &Path,
) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey {
        path: key.to_path_buf(),
    })?;
    let config = server_config(chain, private).map_err(|source| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

async fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let (cert_pem, key_pem) = (read(cert).await?, read(key).await?);
    acceptor_from_pem(&cert_pem, &key_pem, cert, key)
}

impl ServingCerts {
    /// Loads the mounted certificate, or makes a self-signed one for `names` when no
    /// directory is given or its files do not exist (yet: an optional Secret volume).
    /// Files that exist but cannot serve TLS are an error: a broken Secret should stop
    /// the rollout, not be papered over.
    pub async fn new(source: CertSource, names: &[String]) -> Result<Self, TlsError> {
        let (cert_pem, key_pem) = self_signed_pem(names)?;
        let self_signed = acceptor_from_pem(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            Path::new("<self-signed>"),
            Path::new("<self-signed>"),
        )?;
        let mut current = Current {
            stamp: None,
            acceptor: self_signed,
            origin: Origin::SelfSigned,
        };
        if let Some((cert, key)) = source.paths() {
            let seen = stamp(&cert, &key);
            if seen.files.iter().all(Option::is_some) {
                current.acceptor = load(&cert, &key).await?;
                current.origin = Origin::Mounted;
                tracing::info!(cert = %cert.display(), "metrics: serving the mounted certificate");
            } else {
                tracing::warn!(cert = %cert.display(), key = %key.display(),
                    "metrics: no certificate mounted (yet); serving a self-signed one until the files appear");
            }
            current.stamp = Some(seen);
        }
        Ok(ServingCerts {
            source,
            current: tokio::sync::Mutex::new(current),
        })
    }

    /// The acceptor for the next connection: the files are checked first, and loaded
    /// again when they changed.
    pub async fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().await;
        let Some((cert, key)) = self.source.paths() else {
            return current.acceptor.clone();
        };
        let (c, k) = (cert.clone(), key.clone());
        let seen = tokio::task::spawn_blocking(move || stamp(&c, &k))
            .await
            .ok();
        if seen.is_none() || seen == current.stamp {
            return current.acceptor.clone();
        }
        current.stamp = seen.clone();
        let present = seen.is_some_and(|s| s.files.iter().all(Option::is_some));
        if !present {
            // Kept: a Secret being rewritten has its files back in a moment.
            return current.acceptor.clone();
        }
        match load(&cert, &key).await {
            Ok(acceptor) => {
                tracing::info!(cert = %cert.display(), "metrics: serving certificate reloaded");
                current.acceptor = acceptor;
                current.origin = Origin::Mounted;
            }
            Err(e) => {
                tracing::warn!(error = %crate::secure_metrics::chain(&e),
                    "metrics: the changed certificate cannot be used; keeping the previous one");
            }
        }
        current.acceptor.clone()
    }

    /// Where the certificate in use came from.
    pub async fn origin(&self) -> Origin {
        self.current.lock().await.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pairs_load() {
        let (cert, key) = self_signed_pem(&["localhost".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let p = Path::new("x");
        assert!(acceptor_from_pem(cert.as_bytes(), key.as_bytes(), p, p).is_ok());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = self_signed_pem(&["a".into()]).unwrap();
        let (_, key) = self_signed_pem(&["b".into()]).unwrap();
        let p = Path::new("x");
        let Err(err) = acceptor_from_pem(cert.as_bytes(), key.as_bytes(), p, p) else {
            panic!("a mismatched key was accepted")
        };
        assert!(matches!(err, TlsError::Pair { .. }), "{err}");
    }

    #[test]
    fn files_without_pem_say_what_is_missing() {
        let (cert, key) = self_signed_pem(&["a".into()]).unwrap();
        let p = Path::new("tls.crt");
        let Err(err) = acceptor_from_pem(b"junk", key.as_bytes(), p, p) else {
            panic!("junk was accepted as a certificate")
        };
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let Err(err) = acceptor_from_pem(cert.as_bytes(), b"junk", p, p) else {
            panic!("junk was accepted as a key")
        };
        assert!(err.to_string().contains("no PEM private key"), "{err}");
    }

    #[tokio::test]
    async fn missing_files_mean_self_signed_until_they_appear_and_changes_are_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource {
            dir: Some(dir.path().to_path_buf()),
            cert_name: "tls.crt".into(),
            key_name: "tls.key".into(),
        };
        let certs = ServingCerts::new(source, &["localhost".into()])
            .await
            .unwrap();
        assert_eq!(certs.origin().await, Origin::SelfSigned);
        let _ = certs.acceptor().await;
        assert_eq!(certs.origin().await, Origin::SelfSigned);
        let (cert, key) = self_signed_pem(&["mounted".into()]).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        let _ = certs.acceptor().await;
        assert_eq!(certs.origin().await, Origin::Mounted);
        // A broken rewrite keeps the certificate in use.
        std::fs::write(dir.path().join("tls.crt"), "junk").unwrap();
        let _ = certs.acceptor().await;
        assert_eq!(certs.origin().await, Origin::Mounted);
    }

    #[tokio::test]
    async fn present_but_broken_files_stop_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), "junk").unwrap();
        std::fs::write(dir.path().join("tls.key"), "junk").unwrap();
        let source = CertSource {
            dir: Some(dir.path().to_path_buf()),
            cert_name: "tls.crt".into(),
            key_name: "tls.key".into(),
        };
        let err = ServingCerts::new(source, &["localhost".into()])
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
