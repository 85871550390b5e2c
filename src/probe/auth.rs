//! A probe's credentials (`--username` with the server's public key): the
//! `authtoken` a stock client sends, the credentials text encrypted with
//! the key and base64-encoded: RSA OAEP (SHA-1) as 3.17+ clients do, or
//! PKCS#1 v1.5 for a 3.7–3.16 server, which knows no other.

use crate::config::Padding;
use crate::server::auth::public_key_der;

/// Who a probe authenticates as, with the server's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub user: String,
    /// The password.
    pub password: String,
    /// The server's RSA public key (X.509 SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// The padding the server decrypts with.
    pub padding: Padding,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials with the public key read from its PEM text.
    pub fn new(
        user: &str,
        password: &str,
        public_pem: &str,
        padding: Padding,
    ) -> Result<Credentials, String> {
        if user.is_empty() || user.contains(char::is_whitespace) {
            return Err("the username must be non-empty and without spaces".into());
        }
        if password.is_empty() || password.contains(char::is_whitespace) {
            return Err("the password must be non-empty and without spaces".into());
        }
        Ok(Credentials {
            user: user.into(),
            password: password.into(),
            public_key: public_key_der(public_pem)?,
            padding,
        })
    }

    /// The `authtoken` for a test starting at `now_unix` (Unix seconds).
    #[cfg(feature = "auth")]
    pub fn token(&self, now_unix: i64) -> Result<String, String> {
        use crate::protocol::auth::credentials_text;
        use aws_lc_rs::rsa::{
            OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey,
            OAEP_SHA1_MGF1SHA1,
        };
        use base64::Engine;
        let text = credentials_text(&self.user, &self.password, now_unix);
        let key = PublicEncryptingKey::from_der(&self.public_key)
            .map_err(|e| format!("the public key is not an RSA key: {e}"))?;
        let too_long = |_| "the credentials are too long for the key".to_string();
        let mut out = vec![0u8; 1024];
        let ct = match self.padding {
            Padding::Oaep => OaepPublicEncryptingKey::new(key)
                .map_err(|e| e.to_string())?
                .encrypt(&OAEP_SHA1_MGF1SHA1, text.as_bytes(), &mut out, None)
                .map_err(too_long)?
                .to_vec(),
            Padding::Pkcs1 => Pkcs1PublicEncryptingKey::new(key)
                .map_err(|e| e.to_string())?
                .encrypt(text.as_bytes(), &mut out)
                .map_err(too_long)?
                .to_vec(),
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(ct))
    }

    /// Without the `auth` feature there is no RSA: no token.
    #[cfg(not(feature = "auth"))]
    pub fn token(&self, now_unix: i64) -> Result<String, String> {
        let _ = now_unix;
        Err("this webperf3 was built without authentication".into())
    }
}
