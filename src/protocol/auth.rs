//! Authentication as stock iperf3 does it, after the RSA step: the decrypted
//! credentials (`user: U\npwd:  P\nts:   T`), the clock-skew check and the
//! authorized-users file (`username,sha256hex` lines).
//!
//! No RSA, no files and no clock reads here: the decrypted bytes, the file's
//! text and the current Unix time are parameters. Decryption and loading live
//! in [`crate::server::auth`]. Everything a client sends is untrusted: every
//! length is bounded and nothing panics on odd input.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Default largest difference, in seconds, between the client's timestamp
/// and our clock (stock `--time-skew-threshold`).
pub const DEFAULT_SKEW_SECS: u64 = 10;

/// Longest username or password accepted, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// Longest decrypted credentials text accepted, in bytes (an 8192-bit key
/// carries at most 1 KiB).
pub const MAX_PLAINTEXT_LEN: usize = 1024;

/// Longest line of the users file, in bytes.
pub const MAX_USERS_LINE_LEN: usize = 1024;

/// Why a test was not authorized. The text goes to the server's stderr
/// only; the client just hears `SERVER_ERROR` 142.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Authentication is required but the parameters had no `authtoken`.
    #[error(
        "the client sent no credentials (authtoken); it needs --username and --rsa-public-key-path"
    )]
    MissingToken,
    /// The `authtoken` is not standard base64, or has an impossible length.
    #[error("the authtoken is not valid base64 of the key's size")]
    BadToken,
    /// RSA decryption failed: another public key, or the other padding.
    #[error("the authtoken does not decrypt with our private key ({0}); check the client's public key, and the padding: 3.17+ clients use OAEP, 3.7-3.16 clients PKCS#1 v1.5 (--use-pkcs1-padding)")]
    Decrypt(&'static str),
    /// The decrypted text is not `user: U\npwd:  P\nts:   T`.
    #[error("the decrypted credentials are malformed ({0})")]
    Malformed(&'static str),
    /// The client's timestamp is too far from our clock.
    #[error(
        "user {user:?}: the client's clock is {diff} s off ours, more than the allowed {skew} s"
    )]
    Skew {
        /// The username the client gave.
        user: String,
        /// Seconds between the client's timestamp and our clock.
        diff: u64,
        /// The allowed difference.
        skew: u64,
    },
    /// The username is not in the authorized-users file.
    #[error("user {0:?} is not in the authorized-users file")]
    UnknownUser(String),
    /// The username is known but the password does not match.
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
}

/// Credentials decoded from the decrypted `authtoken`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The username (UTF-8, no whitespace).
    pub user: &'a str,
    /// The password as the client sent it (no whitespace).
    pub password: &'a [u8],
    /// The client's Unix time when it built the token.
    pub ts: i64,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("ts", &self.ts)
            .finish()
    }
}

/// C's `isspace`: what separates `%s` tokens in stock's `sscanf`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// A cursor over the credentials text that reads it the way stock's
/// `sscanf("user: %s\npwd:  %s\nts:   %ld")` does: whitespace in the
/// pattern matches any run of whitespace, `%s` is a whitespace-free token.
struct Scanner<'a> {
    rest: &'a [u8],
}

impl<'a> Scanner<'a> {
    fn skip_space(&mut self) {
        let n = self.rest.iter().take_while(|&&b| is_space(b)).count();
        self.rest = &self.rest[n..];
    }

    fn literal(&mut self, word: &'static str, what: &'static str) -> Result<(), AuthError> {
        self.skip_space();
        match self.rest.strip_prefix(word.as_bytes()) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(AuthError::Malformed(what)),
        }
    }

    fn token(&mut self, what: &'static str) -> Result<&'a [u8], AuthError> {
        self.skip_space();
        let n = self.rest.iter().take_while(|&&b| !is_space(b)).count();
        if n == 0 {
            return Err(AuthError::Malformed(what));
        }
        if n > MAX_FIELD_LEN {
            return Err(AuthError::Malformed("a field is too long"));
        }
        let (tok, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(tok)
    }
}

/// Decodes the decrypted `authtoken`: `user: U\npwd:  P\nts:   T` (stock
/// clients send exactly that, with no trailing newline). Whitespace between
/// the parts is matched loosely, as stock's `sscanf` does; anything but
/// whitespace after the timestamp is refused.
pub fn parse_credentials(text: &[u8]) -> Result<Credentials<'_>, AuthError> {
    if text.len() > MAX_PLAINTEXT_LEN {
        return Err(AuthError::Malformed("too long"));
    }
    let mut s = Scanner { rest: text };
    s.literal("user:", "no \"user:\"")?;
    let user = s.token("no username")?;
    s.literal("pwd:", "no \"pwd:\"")?;
    let password = s.token("no password")?;
    s.literal("ts:", "no \"ts:\"")?;
    let ts = s.token("no timestamp")?;
    s.skip_space();
    if !s.rest.is_empty() {
        return Err(AuthError::Malformed("text after the timestamp"));
    }
    let user = std::str::from_utf8(user).map_err(|_| AuthError::Malformed("username not UTF-8"))?;
    let ts = std::str::from_utf8(ts)
        .ok()
        .filter(|t| {
            t.bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
        })
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or(AuthError::Malformed("timestamp not an integer"))?;
    Ok(Credentials { user, password, ts })
}

/// The plaintext a client encrypts into its `authtoken`: exactly what
/// stock clients send (two spaces after `pwd:`, three after `ts:`, no
/// trailing newline), `ts` being the Unix time in seconds.
pub fn credentials_text(user: &str, password: &str, ts: i64) -> String {
    format!("user: {user}\npwd:  {password}\nts:   {ts}")
}

/// Whether the client's timestamp `ts` is within `skew` seconds of `now`
/// (both Unix seconds); the difference otherwise.
pub fn check_skew(ts: i64, now: i64, skew: u64) -> Result<(), u64> {
    let diff = ts.abs_diff(now);
    if diff <= skew {
        Ok(())
    } else {
        Err(diff)
    }
}

/// The hash the users file stores for a user: SHA-256 of `{user}password`
/// (braces included), as stock computes it.
pub fn password_hash(user: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"{");
    h.update(user.as_bytes());
    h.update(b"}");
    h.update(password);
    h.finalize().into()
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Why the authorized-users file was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsersFileError {
    /// A line's hash is not 64 hex digits.
    #[error("line {line}: the hash after the comma must be 64 hex digits (SHA-256 of {{username}}password)")]
    BadHash {
        /// 1-based line number.
        line: usize,
    },
    /// A line's username is empty or contains whitespace.
    #[error("line {line}: the username before the comma must be non-empty and without spaces")]
    BadUser {
        /// 1-based line number.
        line: usize,
    },
    /// A line is longer than [`MAX_USERS_LINE_LEN`].
    #[error("line {line}: longer than {MAX_USERS_LINE_LEN} bytes")]
    LongLine {
        /// 1-based line number.
        line: usize,
    },
    /// The file names no user at all.
    #[error("no users in it (expected lines username,sha256hex)")]
    Empty,
}

/// The authorized-users file: `username,hex` lines, where `hex` is the
/// SHA-256 of `{username}password`. Empty lines, lines starting with `#`
/// and lines without a comma are skipped (as stock does). A user may be
/// listed more than once; any of its hashes matches.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizedUsers {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for AuthorizedUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedUsers")
            .field("users", &self.entries.len())
            .finish()
    }
}

fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = nibble(pair[0])?;
        let lo = nibble(pair[1])?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl AuthorizedUsers {
    /// Parses the file's text. CR and LF end lines; the username is what
    /// precedes the first comma, the hash what follows it up to the next
    /// comma (stock splits with `strtok`); surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<AuthorizedUsers, UsersFileError> {
        let mut entries = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            // Stock cuts each line at its first CR or LF.
            let text = raw.split('\r').next().unwrap_or("");
            if text.len() > MAX_USERS_LINE_LEN {
                return Err(UsersFileError::LongLine { line });
            }
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let Some((user, rest)) = text.split_once(',') else {
                continue;
            };
            let user = user.trim();
            if user.is_empty() || user.bytes().any(is_space) {
                return Err(UsersFileError::BadUser { line });
            }
            let hash = rest.split(',').next().unwrap_or("").trim();
            let hash = hex_digest(hash).ok_or(UsersFileError::BadHash { line })?;
            entries.push((user.to_string(), hash));
        }
        if entries.is_empty() {
            return Err(UsersFileError::Empty);
        }
        Ok(AuthorizedUsers { entries })
    }

    /// How many lines name a user.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no user is listed (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a username and password. The hash comparisons take the same
    /// time wherever the hashes differ, and an unknown user costs the same
    /// hashing and comparing as a known one.
    pub fn check(&self, user: &str, password: &[u8]) -> Result<(), AuthError> {
        let hash = password_hash(user, password);
        let mut known = false;
        let mut matched = false;
        for (name, stored) in &self.entries {
            if name == user {
                known = true;
                matched |= hashes_equal(&hash, stored);
            }
        }
        if !known {
            // The same work as a known user with one entry.
            let _ = hashes_equal(&hash, &[0u8; 32]);
            return Err(AuthError::UnknownUser(user.to_string()));
        }
        if matched {
            Ok(())
        } else {
            Err(AuthError::WrongPassword(user.to_string()))
        }
    }
}

/// Checks decrypted credentials at Unix time `now`: their format, the
/// clock skew (at most `skew` seconds) and the users file. Returns the
/// username.
pub fn verify_plaintext(
    plaintext: &[u8],
    now: i64,
    skew: u64,
    users: &AuthorizedUsers,
) -> Result<String, AuthError> {
    let c = parse_credentials(plaintext)?;
    if let Err(diff) = check_skew(c.ts, now, skew) {
        return Err(AuthError::Skew {
            user: c.user.to_string(),
            diff,
            skew,
        });
    }
    users.check(c.user, c.password)?;
    Ok(c.user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alice / secret, from the protocol notes.
    const ALICE: &str = "alice,27b307f21eb6137ab56a3c80a93a5db840e79a697f80f3381c87edaa79a83f6f";

    #[test]
    fn a_client_writes_what_the_server_reads() {
        let text = credentials_text("alice", "secret", 1795304232);
        assert_eq!(text, "user: alice\npwd:  secret\nts:   1795304232");
        let c = parse_credentials(text.as_bytes()).unwrap();
        assert_eq!(
            (c.user, c.password, c.ts),
            ("alice", &b"secret"[..], 1795304232)
        );
    }

    #[test]
    fn parses_what_stock_clients_send() {
        let c = parse_credentials(b"user: alice\npwd:  secret\nts:   1795304232").unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.password, b"secret");
        assert_eq!(c.ts, 1795304232);
    }

    #[test]
    fn whitespace_between_parts_is_loose_like_sscanf() {
        let c = parse_credentials(b"user:bob pwd:\tp@ss\r\nts:-5\n").unwrap();
        assert_eq!((c.user, c.password, c.ts), ("bob", &b"p@ss"[..], -5));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"user: alice",
            b"user: alice\npwd:  secret",
            b"user: alice\npwd:  secret\nts:   ",
            b"user: alice\npwd:  secret\nts:   12x",
            b"user: alice\npwd:  secret\nts:   1 2",
            b"user: alice\npwd:  secret\nts:   99999999999999999999",
            b"user: alice\npwd:  secret\nts:   --1",
            b"pwd:  secret\nuser: alice\nts:   1",
            b"user: \npwd:  secret\nts:   1",
            b"user: \xff\xfe\npwd:  secret\nts:   1",
            b"\x00\x01\x02garbage from a wrong padding",
        ];
        for case in cases {
            let r = parse_credentials(case);
            assert!(
                matches!(r, Err(AuthError::Malformed(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn field_and_text_lengths_are_bounded() {
        let long = "a".repeat(MAX_FIELD_LEN + 1);
        let text = format!("user: {long}\npwd:  x\nts:   1");
        assert!(matches!(
            parse_credentials(text.as_bytes()),
            Err(AuthError::Malformed(_))
        ));
        let ok = "a".repeat(MAX_FIELD_LEN);
        let text = format!("user: {ok}\npwd:  {ok}\nts:   1");
        assert!(parse_credentials(text.as_bytes()).is_ok());
        let huge = vec![b' '; MAX_PLAINTEXT_LEN + 1];
        assert!(parse_credentials(&huge).is_err());
    }

    #[test]
    fn skew_is_inclusive_and_symmetric() {
        assert_eq!(check_skew(100, 110, 10), Ok(()));
        assert_eq!(check_skew(110, 100, 10), Ok(()));
        assert_eq!(check_skew(100, 111, 10), Err(11));
        assert_eq!(check_skew(111, 100, 10), Err(11));
        assert_eq!(check_skew(5, 5, 0), Ok(()));
        // No overflow at the extremes.
        assert_eq!(check_skew(i64::MIN, i64::MAX, 10), Err(u64::MAX));
    }

    #[test]
    fn hash_matches_stock_example() {
        let h = password_hash("alice", b"secret");
        let users = AuthorizedUsers::parse(ALICE).unwrap();
        assert_eq!(users.entries[0].1, h);
    }

    #[test]
    fn constant_time_compare() {
        let a = password_hash("alice", b"secret");
        let mut b = a;
        assert!(hashes_equal(&a, &b));
        b[31] ^= 1;
        assert!(!hashes_equal(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!hashes_equal(&a, &b));
    }

    #[test]
    fn users_file_rules() {
        let text = format!(
            "# comment, with a comma\r\n\r\n\nno comma here\n{ALICE}\r\nbob,{},trailing\n",
            "AB".repeat(32)
        );
        let users = AuthorizedUsers::parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.entries[1].0, "bob");
        assert_eq!(users.entries[1].1, [0xab; 32]);
        assert_eq!(users.check("alice", b"secret"), Ok(()));
        assert_eq!(
            users.check("alice", b"Secret"),
            Err(AuthError::WrongPassword("alice".into()))
        );
        assert_eq!(
            users.check("carol", b"secret"),
            Err(AuthError::UnknownUser("carol".into()))
        );
    }

    #[test]
    fn a_user_listed_twice_has_two_passwords() {
        let other = password_hash("alice", b"other");
        let hex: String = other.iter().map(|b| format!("{b:02x}")).collect();
        let users = AuthorizedUsers::parse(&format!("{ALICE}\nalice,{hex}\n")).unwrap();
        assert!(users.check("alice", b"secret").is_ok());
        assert!(users.check("alice", b"other").is_ok());
        assert!(users.check("alice", b"third").is_err());
    }

    #[test]
    fn bad_users_files_are_refused_with_the_line() {
        assert_eq!(
            AuthorizedUsers::parse("# only a comment\n"),
            Err(UsersFileError::Empty)
        );
        assert_eq!(
            AuthorizedUsers::parse("alice,27b307\n"),
            Err(UsersFileError::BadHash { line: 1 })
        );
        assert_eq!(
            AuthorizedUsers::parse(&format!("{ALICE}\nbob,{}\n", "zz".repeat(32))),
            Err(UsersFileError::BadHash { line: 2 })
        );
        assert_eq!(
            AuthorizedUsers::parse(&format!(",{}\n", "00".repeat(32))),
            Err(UsersFileError::BadUser { line: 1 })
        );
        assert_eq!(
            AuthorizedUsers::parse(&format!("a b,{}\n", "00".repeat(32))),
            Err(UsersFileError::BadUser { line: 1 })
        );
        let long = format!("{ALICE}{}", " ".repeat(MAX_USERS_LINE_LEN));
        assert_eq!(
            AuthorizedUsers::parse(&long),
            Err(UsersFileError::LongLine { line: 1 })
        );
    }

    #[test]
    fn verify_plaintext_checks_in_order() {
        let users = AuthorizedUsers::parse(ALICE).unwrap();
        let now = 1_795_304_232;
        let ok = format!("user: alice\npwd:  secret\nts:   {now}");
        assert_eq!(
            verify_plaintext(ok.as_bytes(), now + 10, 10, &users),
            Ok("alice".into())
        );
        assert_eq!(
            verify_plaintext(ok.as_bytes(), now + 11, 10, &users),
            Err(AuthError::Skew {
                user: "alice".into(),
                diff: 11,
                skew: 10
            })
        );
        let wrong = format!("user: alice\npwd:  guess\nts:   {now}");
        assert_eq!(
            verify_plaintext(wrong.as_bytes(), now, 10, &users),
            Err(AuthError::WrongPassword("alice".into()))
        );
        assert!(matches!(
            verify_plaintext(b"junk", now, 10, &users),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn errors_escape_what_the_client_chose() {
        let e = AuthError::UnknownUser("eve\n\x1b[31m".into());
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text}");
    }
}
