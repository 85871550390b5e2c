//! The HTTPS listener's TLS settings: its certificate, read from the PEM
//! files `--tls-cert` and `--tls-key` name, or a self-signed one made at
//! first start and kept in the log directory ([`CERT_FILE`], [`KEY_FILE`],
//! the key readable by its owner only), and the rustls configuration on
//! AWS-LC offering HTTP/2 and HTTP/1.1 by ALPN. No sockets here.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// The self-signed certificate's file in the log directory.
pub const CERT_FILE: &str = "tls-cert.pem";

/// Its private key's file (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";

/// What keeps the HTTPS listener from having a certificate.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no PEM certificate, or no PEM private key.
    #[error("{}: no PEM {what} in it", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// Making the self-signed certificate failed.
    #[error("cannot make a self-signed certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// rustls refused the certificate and key (a key of another certificate).
    #[error("the certificate and key are not usable for TLS: {0}")]
    Refused(#[from] rustls::Error),
}

/// Where the certificate came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The files the command line named.
    Given,
    /// The self-signed one kept in the log directory, made at an earlier start.
    Kept(PathBuf),
    /// A self-signed one made now for these names, kept at this path.
    Made(PathBuf, Vec<String>),
}

/// The TLS configuration for `cert` (the files the command line named),
/// or for the self-signed certificate in `log_dir` (made if missing).
pub fn server_config(
    cert: Option<&(PathBuf, PathBuf)>,
    log_dir: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Origin), TlsError> {
    let (cert_path, key_path, origin) = match cert {
        Some((c, k)) => (c.clone(), k.clone(), Origin::Given),
        None => {
            let (c, k) = (log_dir.join(CERT_FILE), log_dir.join(KEY_FILE));
            if c.exists() && k.exists() {
                let kept = Origin::Kept(c.clone());
                (c, k, kept)
            } else {
                let names = names();
                make_self_signed(&names, &c, &k)?;
                let made = Origin::Made(c.clone(), names);
                (c, k, made)
            }
        }
    };
    let chain = read(&cert_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?).map_err(|_| TlsError::Pem {
        path: key_path.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), origin))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// The names a self-signed certificate is for: `localhost`, the host name
/// (and its `.local` form), loopback and the interfaces' addresses.
fn names() -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    if let Some(host) = crate::sys::hostname() {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let short = host.split('.').next().unwrap_or(&host).to_string();
        names.push(format!("{short}.local"));
        names.push(short);
        names.push(host);
    }
    let mut ips: Vec<IpAddr> = crate::sys::interface_addresses();
    ips.extend([
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    ]);
    ips.sort();
    ips.dedup();
    names.extend(ips.iter().map(IpAddr::to_string));
    // Names rcgen cannot put in a certificate (not ASCII) are left out.
    names.retain(|n| !n.is_empty() && n.is_ascii());
    names.dedup();
    names
}

/// Makes a self-signed certificate for `names` and writes it to `cert`,
/// its key to `key` (mode 0600); each file is written whole, then renamed.
fn make_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "webperf3 self-signed");
    let signing_key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&signing_key)?;
    write_whole(key, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_whole(cert, certificate.pem().as_bytes(), 0o644)
}

fn write_whole(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let err = |source| TlsError::File {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(data).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = server_config(None, dir.path()).unwrap();
        let Origin::Made(path, names) = first else {
            panic!("not made: {first:?}");
        };
        assert!(names.iter().any(|n| n == "localhost"));
        assert!(names.iter().any(|n| n == "127.0.0.1"));
        let key = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        let pem = std::fs::read(&path).unwrap();
        let (_, second) = server_config(None, dir.path()).unwrap();
        assert_eq!(second, Origin::Kept(path.clone()));
        assert_eq!(std::fs::read(&path).unwrap(), pem);
    }

    #[test]
    fn files_without_pem_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "not a certificate").unwrap();
        std::fs::write(&k, "not a key").unwrap();
        let err = server_config(Some(&(c, k)), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("c.pem: no PEM certificate"),
            "{err}"
        );
        assert!(!dir.path().join(CERT_FILE).exists());
    }
}
