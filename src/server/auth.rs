//! The RSA side of authentication: loading the PEM private key and the
//! authorized-users file at start-up, and turning a client's `authtoken`
//! (base64 of the RSA-encrypted credentials) into a verified username.
//!
//! RSA comes from AWS-LC through `aws-lc-rs` (cargo feature `auth`, on by
//! default): constant-time RSA with blinding, OAEP and PKCS#1 v1.5
//! decryption, and no open timing advisory (unlike the pure-Rust `rsa`
//! crate, RUSTSEC-2023-0071). Built without the feature, the type still
//! exists but [`Authenticator::load`] refuses. What the credentials say is
//! checked in [`crate::protocol::auth`].

use std::path::{Path, PathBuf};

use base64::Engine;
use thiserror::Error;

pub use crate::config::{AuthConfig, Padding};
use crate::protocol::auth::{self, AuthError, AuthorizedUsers, UsersFileError};

/// Longest `authtoken` looked at: base64 of an 8192-bit ciphertext is 1368
/// characters.
const MAX_TOKEN_LEN: usize = 2048;

/// Longest key file read, in bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Longest users file read, in bytes.
const MAX_USERS_FILE: u64 = 16 * 1024 * 1024;

/// Why authentication could not be set up at start-up.
#[derive(Debug, Error)]
pub enum AuthSetupError {
    /// The binary was built without the `auth` cargo feature.
    #[error("this webperf3 was built without authentication support (cargo feature `auth`)")]
    NotBuilt,
    /// A file could not be read (or is too large).
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The key file holds no usable PEM private key.
    #[error("{}: {reason}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The users file breaks the format.
    #[error("authorized users file {}: {source}", .path.display())]
    Users {
        /// The users file.
        path: PathBuf,
        /// The first problem found.
        source: UsersFileError,
    },
}

#[cfg(feature = "auth")]
enum Key {
    Oaep(aws_lc_rs::rsa::OaepPrivateDecryptingKey),
    Pkcs1(aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey),
}

/// Without RSA support there is no key to hold: the type is empty.
#[cfg(not(feature = "auth"))]
enum Key {}

/// Verifies `authtoken`s: the private key, the users and the rules.
pub struct Authenticator {
    key: Key,
    users: AuthorizedUsers,
    skew: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("padding", &self.padding())
            .field("users", &self.users)
            .field("skew", &self.skew)
            .finish()
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<String, AuthSetupError> {
    use std::io::Read;
    let read_err = |source| AuthSetupError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > limit {
        return Err(read_err(std::io::Error::other(format!(
            "larger than {limit} bytes"
        ))));
    }
    Ok(text)
}

impl Authenticator {
    /// Reads the key and the users file named by `config`.
    pub fn load(config: &AuthConfig) -> Result<Authenticator, AuthSetupError> {
        if cfg!(not(feature = "auth")) {
            return Err(AuthSetupError::NotBuilt);
        }
        let pem = read_limited(&config.key_path, MAX_KEY_FILE)?;
        let users = read_limited(&config.users_path, MAX_USERS_FILE)?;
        Authenticator::from_parts(&pem, &users, config.padding, config.skew).map_err(|e| match e {
            PartsError::Key(reason) => AuthSetupError::Key {
                path: config.key_path.clone(),
                reason,
            },
            PartsError::Users(source) => AuthSetupError::Users {
                path: config.users_path.clone(),
                source,
            },
            PartsError::NotBuilt => AuthSetupError::NotBuilt,
        })
    }

    /// Builds an authenticator from the key's PEM text and the users file's
    /// text.
    pub fn from_parts(
        key_pem: &str,
        users: &str,
        padding: Padding,
        skew: u64,
    ) -> Result<Authenticator, PartsError> {
        let der = private_key_der(key_pem).map_err(PartsError::Key)?;
        let key = make_key(&der, padding)?;
        let users = AuthorizedUsers::parse(users).map_err(PartsError::Users)?;
        Ok(Authenticator { key, users, skew })
    }

    /// The padding tokens must use.
    pub fn padding(&self) -> Padding {
        #[cfg(feature = "auth")]
        match self.key {
            Key::Oaep(_) => Padding::Oaep,
            Key::Pkcs1(_) => Padding::Pkcs1,
        }
        #[cfg(not(feature = "auth"))]
        match self.key {}
    }

    /// How many users the file lists.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Checks a test's `authtoken` at Unix time `now_unix`; returns the
    /// username. A missing token is a failure: authentication is required.
    pub fn verify(&self, token: Option<&str>, now_unix: i64) -> Result<String, AuthError> {
        let token = token.ok_or(AuthError::MissingToken)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::BadToken);
        }
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| AuthError::BadToken)?;
        let mut plaintext = self.decrypt(&ciphertext)?;
        let result = auth::verify_plaintext(&plaintext, now_unix, self.skew, &self.users);
        plaintext.fill(0);
        result
    }

    #[cfg(feature = "auth")]
    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (size, out_len) = match &self.key {
            Key::Oaep(k) => (k.key_size_bytes(), k.min_output_size()),
            Key::Pkcs1(k) => (k.key_size_bytes(), k.min_output_size()),
        };
        if ciphertext.len() != size {
            return Err(AuthError::BadToken);
        }
        let mut out = vec![0u8; out_len];
        let n = match &self.key {
            Key::Oaep(k) => k
                .decrypt(
                    &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
                    ciphertext,
                    &mut out,
                    None,
                )
                .map_err(|_| AuthError::Decrypt("OAEP"))?
                .len(),
            Key::Pkcs1(k) => k
                .decrypt(ciphertext, &mut out)
                .map_err(|_| AuthError::Decrypt("PKCS#1 v1.5"))?
                .len(),
        };
        out.truncate(n);
        Ok(out)
    }

    #[cfg(not(feature = "auth"))]
    fn decrypt(&self, _ciphertext: &[u8]) -> Result<Vec<u8>, AuthError> {
        match self.key {}
    }
}

/// Why [`Authenticator::from_parts`] failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartsError {
    /// The key text is not a usable RSA private key.
    #[error("{0}")]
    Key(String),
    /// The users text breaks the format.
    #[error("{0}")]
    Users(UsersFileError),
    /// Built without the `auth` cargo feature.
    #[error("built without authentication support")]
    NotBuilt,
}

#[cfg(feature = "auth")]
fn make_key(pkcs8: &[u8], padding: Padding) -> Result<Key, PartsError> {
    use aws_lc_rs::rsa::{
        OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
    };
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|e| {
        PartsError::Key(format!(
            "not a usable RSA private key ({e}); RSA keys of 2048 to 8192 bits are supported"
        ))
    })?;
    let unusable = |_| PartsError::Key("the RSA key cannot be used for decryption".into());
    Ok(match padding {
        Padding::Oaep => Key::Oaep(OaepPrivateDecryptingKey::new(key).map_err(unusable)?),
        Padding::Pkcs1 => Key::Pkcs1(Pkcs1PrivateDecryptingKey::new(key).map_err(unusable)?),
    })
}

#[cfg(not(feature = "auth"))]
fn make_key(_pkcs8: &[u8], _padding: Padding) -> Result<Key, PartsError> {
    Err(PartsError::NotBuilt)
}

/// The DER (PKCS#8) of the first private key in a PEM text. Accepts
/// `PRIVATE KEY` (PKCS#8, what `openssl genrsa` writes since OpenSSL 3) and
/// `RSA PRIVATE KEY` (PKCS#1, older OpenSSL and `-traditional`), as stock's
/// `PEM_read_bio_PrivateKey` does; passphrase-protected keys are refused.
pub fn private_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let missing = "no PEM private key in it (expected -----BEGIN PRIVATE KEY-----)";
    let (label, der) = pem_block(pem, &["PRIVATE KEY", "RSA PRIVATE KEY"], missing)?;
    Ok(if label == "RSA PRIVATE KEY" {
        pkcs1_to_pkcs8(&der)
    } else {
        der
    })
}

/// The DER (X.509 SubjectPublicKeyInfo) of the first public key in a PEM
/// text: the `PUBLIC KEY` a client's `--rsa-public-key-path` names (what
/// `openssl rsa -pubout` writes).
pub fn public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let missing = "no PEM public key in it (expected -----BEGIN PUBLIC KEY-----)";
    pem_block(pem, &["PUBLIC KEY"], missing).map(|(_, der)| der)
}

/// The label and decoded body of the first PEM block in `pem` labelled
/// one of `labels`; `missing` is the error when there is none. Encrypted
/// blocks are refused.
fn pem_block<'a>(
    pem: &str,
    labels: &[&'a str],
    missing: &str,
) -> Result<(&'a str, Vec<u8>), String> {
    let mut lines = pem.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err(missing.into());
        };
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if label == "ENCRYPTED PRIVATE KEY" {
                return Err(encrypted());
            }
            if let Some(&wanted) = labels.iter().find(|&&l| l == label) {
                break wanted;
            }
        }
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut closed = false;
    for line in lines.by_ref() {
        if line == end {
            closed = true;
            break;
        }
        if line.contains(':') {
            // RFC 1421 headers: only an encrypted key has them.
            if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
                return Err(encrypted());
            }
            continue;
        }
        body.push_str(line);
    }
    if !closed {
        return Err(format!("the PEM block has no {end} line"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("the PEM block is not valid base64: {e}"))?;
    Ok((label, der))
}

fn encrypted() -> String {
    "the private key is passphrase-protected; write a plain copy with \
     `openssl pkey -in KEY.pem -out PLAIN.pem` (and keep it readable only by webperf3)"
        .into()
}

/// A DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let len = &bytes[skip..];
        out.push(0x80 | len.len() as u8);
        out.extend_from_slice(len);
    }
}

/// Wraps a PKCS#1 `RSAPrivateKey` into a PKCS#8 `PrivateKeyInfo`
/// (version 0, algorithm rsaEncryption with NULL parameters).
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    const VERSION_AND_ALGORITHM: [u8; 18] = [
        0x02, 0x01, 0x00, // INTEGER 0
        0x30, 0x0d, // SEQUENCE
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, // rsaEncryption
        0x05, 0x00, // NULL
    ];
    let mut octets = vec![0x04];
    der_len(pkcs1.len(), &mut octets);
    octets.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(VERSION_AND_ALGORITHM.len() + octets.len(), &mut out);
    out.extend_from_slice(&VERSION_AND_ALGORITHM);
    out.extend_from_slice(&octets);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        let enc = |n| {
            let mut v = Vec::new();
            der_len(n, &mut v);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x81, 128]);
        assert_eq!(enc(255), [0x81, 255]);
        assert_eq!(enc(256), [0x82, 1, 0]);
        assert_eq!(enc(1217), [0x82, 0x04, 0xc1]);
    }

    #[test]
    fn pem_errors_say_what_is_wrong() {
        let e = private_key_der("hello").unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
        let e = private_key_der("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .unwrap_err();
        assert!(e.contains("no PEM private key"), "{e}");
        let e = private_key_der("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n").unwrap_err();
        assert!(e.contains("passphrase"), "{e}");
        let e = private_key_der(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("passphrase"), "{e}");
        let e = private_key_der("-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap_err();
        assert!(e.contains("no -----END PRIVATE KEY----- line"), "{e}");
        let e = private_key_der("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----")
            .unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }

    #[test]
    fn pem_body_is_decoded_across_lines_and_blocks() {
        let pem = "junk before\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\r\nAAEC\r\n  AwQF \r\n-----END PRIVATE KEY-----\r\n";
        assert_eq!(private_key_der(pem).unwrap(), [0, 1, 2, 3, 4, 5]);
        let p1 = "-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----";
        let der = private_key_der(p1).unwrap();
        assert_eq!(der, pkcs1_to_pkcs8(&[0x30, 0]));
        assert_eq!(&der[..4], [0x30, 0x16, 0x02, 0x01]);
    }

    #[cfg(feature = "auth")]
    mod rsa {
        use super::super::*;
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{
            KeySize, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
            OAEP_SHA1_MGF1SHA1,
        };
        use std::sync::OnceLock;

        const ALICE: &str =
            "alice,27b307f21eb6137ab56a3c80a93a5db840e79a697f80f3381c87edaa79a83f6f\n";
        const NOW: i64 = 1_795_304_232;

        /// One 2048-bit key for all tests (generation is the slow part).
        fn pkcs8() -> &'static [u8] {
            static KEY: OnceLock<Vec<u8>> = OnceLock::new();
            KEY.get_or_init(|| {
                let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
                let der: Pkcs8V1Der<'static> = key.as_der().unwrap();
                der.as_ref().to_vec()
            })
        }

        fn pem(label: &str, der: &[u8]) -> String {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let body: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                body.join("\n")
            )
        }

        fn public() -> aws_lc_rs::rsa::PublicEncryptingKey {
            PrivateDecryptingKey::from_pkcs8(pkcs8())
                .unwrap()
                .public_key()
        }

        fn token(plaintext: &str, padding: Padding) -> String {
            let mut out = vec![0u8; 512];
            let ct = match padding {
                Padding::Oaep => OaepPublicEncryptingKey::new(public())
                    .unwrap()
                    .encrypt(&OAEP_SHA1_MGF1SHA1, plaintext.as_bytes(), &mut out, None)
                    .unwrap()
                    .to_vec(),
                Padding::Pkcs1 => Pkcs1PublicEncryptingKey::new(public())
                    .unwrap()
                    .encrypt(plaintext.as_bytes(), &mut out)
                    .unwrap()
                    .to_vec(),
            };
            base64::engine::general_purpose::STANDARD.encode(ct)
        }

        fn creds(pwd: &str, ts: i64) -> String {
            format!("user: alice\npwd:  {pwd}\nts:   {ts}")
        }

        fn auth(padding: Padding) -> Authenticator {
            Authenticator::from_parts(&pem("PRIVATE KEY", pkcs8()), ALICE, padding, 10).unwrap()
        }

        #[test]
        fn oaep_token_round_trip() {
            let a = auth(Padding::Oaep);
            let t = token(&creds("secret", NOW), Padding::Oaep);
            assert_eq!(t.len(), 344);
            assert_eq!(a.verify(Some(&t), NOW + 3), Ok("alice".into()));
            assert_eq!(
                a.verify(Some(&token(&creds("nope", NOW), Padding::Oaep)), NOW),
                Err(AuthError::WrongPassword("alice".into()))
            );
            assert!(matches!(
                a.verify(Some(&t), NOW + 60),
                Err(AuthError::Skew { diff: 60, .. })
            ));
        }

        #[test]
        fn pkcs1_token_round_trip() {
            let a = auth(Padding::Pkcs1);
            let t = token(&creds("secret", NOW), Padding::Pkcs1);
            assert_eq!(a.verify(Some(&t), NOW), Ok("alice".into()));
        }

        #[test]
        fn padding_mismatch_is_a_decrypt_error() {
            let oaep = auth(Padding::Oaep);
            let t = token(&creds("secret", NOW), Padding::Pkcs1);
            assert_eq!(oaep.verify(Some(&t), NOW), Err(AuthError::Decrypt("OAEP")));
            let pkcs1 = auth(Padding::Pkcs1);
            let t = token(&creds("secret", NOW), Padding::Oaep);
            assert_eq!(
                pkcs1.verify(Some(&t), NOW),
                Err(AuthError::Decrypt("PKCS#1 v1.5"))
            );
        }

        #[test]
        fn missing_or_broken_tokens() {
            let a = auth(Padding::Oaep);
            assert_eq!(a.verify(None, NOW), Err(AuthError::MissingToken));
            assert_eq!(a.verify(Some(""), NOW), Err(AuthError::BadToken));
            assert_eq!(a.verify(Some("not base64!"), NOW), Err(AuthError::BadToken));
            assert_eq!(a.verify(Some("AAAA"), NOW), Err(AuthError::BadToken));
            let long = "A".repeat(MAX_TOKEN_LEN + 4);
            assert_eq!(a.verify(Some(&long), NOW), Err(AuthError::BadToken));
            let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 256]);
            assert_eq!(a.verify(Some(&zeros), NOW), Err(AuthError::Decrypt("OAEP")));
            let t = token(&creds("secret", NOW), Padding::Oaep);
            assert_eq!(
                a.verify(Some(&format!("{t}\n")), NOW),
                Err(AuthError::BadToken)
            );
        }

        #[test]
        fn pkcs1_pem_is_wrapped_into_pkcs8() {
            // aws-lc writes PKCS#8 with a 26-byte header before the
            // PKCS#1 key; the wrapper must rebuild it byte for byte.
            let p8 = pkcs8();
            let p1 = &p8[26..];
            assert_eq!(p1[0], 0x30);
            assert_eq!(pkcs1_to_pkcs8(p1), p8);
            let a =
                Authenticator::from_parts(&pem("RSA PRIVATE KEY", p1), ALICE, Padding::Oaep, 10)
                    .unwrap();
            let t = token(&creds("secret", NOW), Padding::Oaep);
            assert_eq!(a.verify(Some(&t), NOW), Ok("alice".into()));
        }

        #[test]
        fn small_or_bogus_keys_are_refused() {
            let e = Authenticator::from_parts(
                &pem("PRIVATE KEY", &[0x30, 0]),
                ALICE,
                Padding::Oaep,
                10,
            )
            .unwrap_err();
            assert!(
                matches!(e, PartsError::Key(ref m) if m.contains("2048 to 8192")),
                "{e}"
            );
            let e = Authenticator::from_parts(&pem("PRIVATE KEY", pkcs8()), "", Padding::Oaep, 10)
                .unwrap_err();
            assert_eq!(e, PartsError::Users(UsersFileError::Empty));
        }

        #[test]
        fn load_reads_files_and_names_them_in_errors() {
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("key.pem");
            let users = dir.path().join("users.csv");
            std::fs::write(&key, pem("PRIVATE KEY", pkcs8())).unwrap();
            std::fs::write(&users, ALICE).unwrap();
            let mut config = AuthConfig {
                key_path: key.clone(),
                users_path: users.clone(),
                padding: Padding::Oaep,
                skew: 10,
            };
            let a = Authenticator::load(&config).unwrap();
            assert_eq!((a.user_count(), a.padding()), (1, Padding::Oaep));
            config.users_path = dir.path().join("missing.csv");
            let e = Authenticator::load(&config).unwrap_err().to_string();
            assert!(e.contains("missing.csv"), "{e}");
            config.users_path = users;
            std::fs::write(&key, "junk").unwrap();
            let e = Authenticator::load(&config).unwrap_err().to_string();
            assert!(e.contains("key.pem") && e.contains("no PEM"), "{e}");
        }
    }
}
