//! Authentication with the stock client (`--username`,
//! `--rsa-public-key-path`, password in `IPERF3_PASSWORD`): a key pair made
//! with the `openssl` command in each test's temp dir, a users file, our
//! server requiring both. Debian's iperf3 3.12 encrypts with PKCS#1 v1.5,
//! so these servers run with that padding unless a test says otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webperf3::protocol::policy::Policy;
use webperf3::server::auth::{AuthConfig, Authenticator, Padding};
use webperf3::server::port::PortSettings;

use crate::harness::Server;
use crate::support::daemon::{run, Launch};
use crate::support::iperf3;
use crate::support::logs::read_entries;
use crate::support::process::wait_output;

/// alice / secret: SHA-256 of `{alice}secret`.
const USERS: &str = "# test users\n\
                     alice,27b307f21eb6137ab56a3c80a93a5db840e79a697f80f3381c87edaa79a83f6f\n";

/// A key pair and users file in a temp dir.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    /// Makes an RSA key pair with `openssl` (`traditional`: the PKCS#1
    /// `RSA PRIVATE KEY` PEM instead of PKCS#8) and the users file.
    fn new(traditional: bool) -> Keys {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("private.pem");
        let mut genrsa = vec!["genrsa", "-out", key.to_str().unwrap()];
        if traditional {
            genrsa.push("-traditional");
        }
        genrsa.push("2048");
        openssl(&genrsa);
        openssl(&[
            "rsa",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            dir.path().join("public.pem").to_str().unwrap(),
        ]);
        std::fs::write(dir.path().join("users.csv"), USERS).unwrap();
        Keys { dir }
    }

    fn private(&self) -> PathBuf {
        self.dir.path().join("private.pem")
    }

    fn public(&self) -> PathBuf {
        self.dir.path().join("public.pem")
    }

    fn users(&self) -> PathBuf {
        self.dir.path().join("users.csv")
    }

    fn authenticator(&self, padding: Padding) -> Arc<Authenticator> {
        let config = AuthConfig {
            key_path: self.private(),
            users_path: self.users(),
            padding,
            skew: 10,
        };
        Arc::new(Authenticator::load(&config).expect("load key and users"))
    }
}

/// One port of our server, requiring authentication.
fn with_auth(auth: Arc<Authenticator>) -> Server {
    let settings = PortSettings {
        auth: Some(auth),
        ..PortSettings::default()
    };
    Server::with_settings(1, settings)
}

/// Runs the `openssl` command; fails the test with an install hint when it
/// is missing.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!(
            "the openssl command is required for the authentication tests \
             (apt-get install -y openssl): {e}"
        ),
    };
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the stock client against `port` for a one-second test; with
/// `creds` = (user, password, public key) it authenticates.
fn client(port: u16, creds: Option<(&str, &str, &Path)>) -> Output {
    client_with(port, creds, &["-t", "1"])
}

/// As [`client`], with the test's own flags.
fn client_with(port: u16, creds: Option<(&str, &str, &Path)>, test: &[&str]) -> Output {
    let mut cmd = Command::new(iperf3::require());
    cmd.args(["-c", "127.0.0.1", "-p", &port.to_string()])
        .args(test)
        .env_remove("IPERF3_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((user, password, key)) = creds {
        cmd.args(["--username", user, "--rsa-public-key-path"])
            .arg(key)
            .env("IPERF3_PASSWORD", password);
    }
    wait_output(cmd.spawn().expect("spawn iperf3"), Duration::from_secs(30))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn assert_refused(out: &Output) {
    assert!(!out.status.success(), "client passed: {}", text(out));
    assert!(
        text(out).contains("test authorization failed"),
        "client output: {}",
        text(out)
    );
}

fn assert_passed(out: &Output) {
    assert!(out.status.success(), "client failed: {}", text(out));
}

#[test]
fn right_password_passes_and_the_user_is_logged() {
    let keys = Keys::new(false);
    let server = with_auth(keys.authenticator(Padding::Pkcs1));
    let port = server.ports[0];
    assert_passed(&client(port, Some(("alice", "secret", &keys.public()))));
    let e = server.wait_entries(0, 1).remove(0);
    assert!(e.get("error").is_none(), "error in log: {}", e["error"]);
    assert_eq!(e["webperf3"]["user"], "alice");
    assert!(e["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn refusals_then_a_normal_test() {
    let keys = Keys::new(false);
    let server = with_auth(keys.authenticator(Padding::Pkcs1));
    let port = server.ports[0];
    let public = keys.public();
    // Wrong password, unknown user, no credentials at all.
    assert_refused(&client(port, Some(("alice", "guess", &public))));
    assert_refused(&client(port, Some(("mallory", "secret", &public))));
    assert_refused(&client(port, None));
    // The port is free again and an authorized test runs normally.
    assert_passed(&client(port, Some(("alice", "secret", &public))));
    // Refusals are counted on stderr, not written to the log one by one.
    let entries = server.wait_entries(0, 1);
    assert_eq!(entries.len(), 1, "only the authorized test is logged");
    assert!(entries[0].get("error").is_none());
    assert_eq!(entries[0]["webperf3"]["user"], "alice");
}

#[test]
fn limits_are_told_only_after_authentication() {
    let keys = Keys::new(false);
    let settings = PortSettings {
        auth: Some(keys.authenticator(Padding::Pkcs1)),
        policy: Policy {
            max_duration: Some(5),
            no_udp: true,
            bitrate_limit: Some("1M".parse().unwrap()),
            ..Policy::default()
        },
        ..PortSettings::default()
    };
    let server = Server::with_settings(1, settings);
    let port = server.ports[0];
    let public = keys.public();
    // Without the right password, a test over the limits learns nothing
    // about them: it is refused as unauthorized, no sooner than any other.
    for test in [
        &["-t", "10"][..],
        &["-u", "-t", "1"],
        &["-b", "10M", "-t", "1"],
    ] {
        let began = Instant::now();
        let out = client_with(port, Some(("alice", "guess", &public)), test);
        assert_refused(&out);
        assert!(
            began.elapsed() >= Duration::from_millis(250),
            "{test:?} refused after {:?}",
            began.elapsed()
        );
    }
    // With it, the limit is what refuses the test.
    let out = client_with(port, Some(("alice", "secret", &public)), &["-t", "10"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("int_errno=37") || said.contains("exceeds the server's maximum"),
        "{said}"
    );
}

#[test]
fn another_key_or_padding_is_refused() {
    let keys = Keys::new(false);
    let other = Keys::new(false);
    // OAEP (the default) refuses a 3.7-3.16 client's PKCS#1 v1.5 token.
    let server = with_auth(keys.authenticator(Padding::Oaep));
    let port = server.ports[0];
    let version = Command::new("iperf3").arg("--version").output();
    let old_client = version
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .is_ok_and(|v| (7..=16).any(|minor| v.starts_with(&format!("iperf 3.{minor} "))));
    if old_client {
        assert_refused(&client(port, Some(("alice", "secret", &keys.public()))));
    }
    // A token made for another key never decrypts.
    assert_refused(&client(port, Some(("alice", "secret", &other.public()))));
    // Refusals are counted, not logged.
    assert!(read_entries(&server.log_path(0)).is_empty());
}

#[test]
fn credentials_are_ignored_without_authentication() {
    let keys = Keys::new(false);
    let server = Server::start(1);
    let port = server.ports[0];
    assert_passed(&client(port, Some(("alice", "whatever", &keys.public()))));
    let e = server.wait_entries(0, 1).remove(0);
    assert!(e.get("error").is_none());
    assert!(e["webperf3"].get("user").is_none());
}

#[test]
fn auth_flags_come_in_pairs() {
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--rsa-private-key-path",
        "--authorized-users-path",
        "--time-skew-threshold",
        "--use-pkcs1-padding",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let keys = Keys::new(false);
    let (key, users) = (keys.private(), keys.users());
    for args in [
        vec!["--rsa-private-key-path", key.to_str().unwrap()],
        vec!["--authorized-users-path", users.to_str().unwrap()],
        vec!["--use-pkcs1-padding"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
}

/// Starts the binary on a kernel-chosen loopback port with `extra` flags;
/// returns its exit status when it stops on its own within a few seconds.
fn start_up_failure(extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--port", "0", "--servers", "1", "--bind", "127.0.0.1"];
    args.extend_from_slice(&["--http", "127.0.0.1:0", "-d", dir.path().to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn bad_key_or_users_file_exits_1_with_one_line() {
    let keys = Keys::new(false);
    let key = keys.private();
    let users = keys.users();
    let public = keys.public();
    let bad_users = keys.dir.path().join("bad.csv");
    std::fs::write(&bad_users, "alice,not-a-hash\n").unwrap();
    let missing = keys.dir.path().join("missing.pem");
    for (k, u, expect) in [
        (&missing, &users, "missing.pem"),
        (&public, &users, "public.pem"),
        (&key, &bad_users, "line 1"),
        (&key, &missing, "missing.pem"),
    ] {
        let out = start_up_failure(&[
            "--rsa-private-key-path",
            k.to_str().unwrap(),
            "--authorized-users-path",
            u.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{k:?} {u:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(err.contains(expect), "{expect} not in: {err}");
    }
}

#[test]
fn binary_with_a_traditional_key() {
    let keys = Keys::new(true);
    let key_text = std::fs::read_to_string(keys.private()).unwrap();
    assert!(key_text.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let dir = tempfile::tempdir().unwrap();
    let mut server = Launch::new(dir.path())
        .arg("--rsa-private-key-path")
        .arg(keys.private())
        .arg("--authorized-users-path")
        .arg(keys.users())
        .arg("--use-pkcs1-padding")
        .start();
    let port = server.port;
    let banner = server.banner();
    assert!(
        banner.contains("authentication required: 1 user, PKCS#1 v1.5 padding"),
        "{banner}"
    );
    assert_refused(&client(port, Some(("alice", "wrong", &keys.public()))));
    // The refusal's reason goes to stderr, not to the client.
    let reason = server.wait_line_after_banner(1);
    assert!(
        reason.contains("not authorized") && reason.contains("wrong password for user \"alice\""),
        "{reason}"
    );
    assert_passed(&client(port, Some(("alice", "secret", &keys.public()))));
    assert_eq!(server.terminate().code(), Some(0));
    let entries = read_entries(&dir.path().join(format!("port-{port}.json")));
    assert_eq!(entries.len(), 1, "the refusal is not logged");
    assert_eq!(entries[0]["webperf3"]["user"], "alice");
}

/// The box's own client (`webperf3::probe`) with `--username` alice and
/// `password`, against `port`.
fn probe(port: u16, keys: &Keys, password: &str, padding: Padding) -> webperf3::probe::Outcome {
    use webperf3::probe::auth::Credentials;
    use webperf3::protocol::params::{Protocol, TestParams};
    let pem = std::fs::read_to_string(keys.public()).expect("public key");
    let creds = Credentials::new("alice", password, &pem, padding).expect("credentials");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let params = TestParams {
        time: 1,
        authtoken: Some(creds.token(now).expect("token")),
        ..TestParams::client_default(Protocol::Tcp)
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(webperf3::probe::run(addr, params, Default::default()))
}

#[test]
fn the_box_as_client_authenticates_to_stock_and_to_ours() {
    use webperf3::protocol::client::Failure;
    use webperf3::protocol::errors::ErrorCode;
    let keys = Keys::new(false);
    // Debian's 3.12 server decrypts PKCS#1 v1.5 only, and tells a failure
    // with the code alone before it closes.
    let key = keys.private();
    let users = keys.users();
    let stock = iperf3::StockServer::start_with(&[
        "--rsa-private-key-path",
        key.to_str().unwrap(),
        "--authorized-users-path",
        users.to_str().unwrap(),
    ]);
    let out = probe(stock.port, &keys, "secret", Padding::Pkcs1);
    assert_eq!(out.failure, None);
    assert!(out.sent.bytes > 0);
    // Until its entry is written, stock answers the next test busy.
    crate::support::logs::wait_entries(&stock.log, 1);
    let out = probe(stock.port, &keys, "wrong", Padding::Pkcs1);
    assert!(
        matches!(out.failure, Some(Failure::Server { code, .. }) if code == ErrorCode::AUTH_TEST),
        "{:?}",
        out.failure
    );
    // Ours, with the padding of 3.17+ clients.
    let server = with_auth(keys.authenticator(Padding::Oaep));
    let out = probe(server.ports[0], &keys, "secret", Padding::Oaep);
    assert_eq!(out.failure, None);
    let e = server.wait_entries(0, 1).remove(0);
    assert_eq!(e["webperf3"]["user"], "alice");
    let out = probe(server.ports[0], &keys, "wrong", Padding::Oaep);
    assert!(
        matches!(out.failure, Some(Failure::Server { code, .. }) if code == ErrorCode::AUTH_TEST),
        "{:?}",
        out.failure
    );
}
