//! The HTTPS listener and the responsiveness endpoints with real clients:
//! curl over TLS speaking HTTP/2 and HTTP/1.1, `ndt7-client` over `wss://`,
//! certificates made by the `openssl` command; the endpoints' bounds
//! against clients that hold transfers open or trickle.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Env;
use crate::heavy::unread;
use crate::support::curl::{fetch, Fetched};
use crate::support::daemon::{Daemon, Launch};
use crate::support::http::{http_get, http_post};
use crate::support::ndt7;
use crate::support::tools;
use crate::support::wait::wait_until;

const LIMIT: Duration = Duration::from_secs(30);

fn https_of(d: &Daemon) -> SocketAddr {
    d.https
        .unwrap_or_else(|| panic!("no HTTPS in the start-up line: {}", d.banner()))
}

/// GET (or POST with `extra`) over TLS taking any certificate.
fn get(version: &str, url: &str, extra: &[&str]) -> Fetched {
    let mut args = vec!["-k", version, url];
    args.extend_from_slice(extra);
    fetch(&args, LIMIT)
}

/// A file of `n` bytes to upload.
fn upload_file(dir: &Path, n: usize) -> String {
    let path = dir.join("upload.bin");
    std::fs::write(&path, vec![0x5au8; n]).unwrap();
    format!("@{}", path.display())
}

#[test]
fn https_serves_the_dashboard_and_the_responsiveness_endpoints_in_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let d = Launch::new(dir.path()).start();
    let addr = https_of(&d);
    let data = upload_file(dir.path(), 24 << 20);
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let page = get(flag, &format!("https://{addr}/"), &[]);
        assert_eq!(
            (page.status, page.version.as_str()),
            (200, version),
            "{page:?}"
        );
        assert!(page.body.contains("<html"), "{page:?}");
        let status = get(flag, &format!("https://{addr}/api/status"), &[]);
        assert_eq!(status.status, 200, "{status:?}");
        let nq = get(flag, &format!("https://{addr}/.well-known/nq"), &[]);
        assert_eq!((nq.status, nq.version.as_str()), (200, version), "{nq:?}");
        let doc: Value = serde_json::from_str(&nq.body).unwrap();
        assert_eq!(doc["version"], 1);
        let urls = &doc["urls"];
        let large = urls["large_https_download_url"].as_str().unwrap();
        assert_eq!(large, format!("https://{addr}/nq/large"));
        assert_eq!(urls["large_download_url"], large);
        let small = get(
            flag,
            urls["small_https_download_url"].as_str().unwrap(),
            &[],
        );
        assert_eq!((small.status, small.downloaded), (200, 8), "{small:?}");
        // The large download runs until curl gives up after a second.
        let down = get(flag, large, &["-o", "/dev/null", "--max-time", "1"]);
        assert_eq!(down.exit, Some(28), "{down:?}");
        assert_eq!(
            (down.status, down.version.as_str()),
            (200, version),
            "{down:?}"
        );
        assert!(down.downloaded > 8 << 20, "{down:?}");
        let upload = urls["https_upload_url"].as_str().unwrap();
        let up = get(flag, upload, &["--data-binary", &data]);
        assert_eq!((up.status, up.version.as_str()), (200, version), "{up:?}");
        assert_eq!(up.uploaded, 24 << 20, "{up:?}");
        let answer: Value = serde_json::from_str(&up.body).unwrap();
        assert_eq!(answer["bytes"], 24 << 20);
    }
    // Plain HTTP names plain URLs on its own port.
    let doc = http_get(d.http, "/.well-known/nq").unwrap().json();
    assert_eq!(
        doc["urls"]["upload_url"],
        format!("http://{}/nq/upload", d.http)
    );
}

#[test]
fn ndt7_runs_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let d = Launch::new(dir.path()).start();
    let summary = ndt7::run_client_wss(https_of(&d), &["--no-upload"]);
    let mbps = summary["Summary"]["Download"]["ThroughputMbps"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(mbps > 0.0, "{summary}");
    d.wait_stderr("ndt7: subtest recorded");
    let log = std::fs::read_to_string(dir.path().join("ndt7.json")).unwrap();
    assert!(log.contains("\"download\""), "{log}");
}

fn openssl() -> std::path::PathBuf {
    tools::require("openssl", &["openssl"], "openssl")
}

#[test]
fn a_certificate_made_by_openssl_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = Command::new(openssl())
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=webperf3 test", "-addext"])
        .args(["subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let logs = dir.path().join("logs");
    let d = Launch::new(&logs)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .start();
    // Verified against that certificate, not taken blindly.
    let url = format!("https://{}/.well-known/nq", https_of(&d));
    let cacert = cert.display().to_string();
    let got = fetch(&["--cacert", &cacert, "--http2", &url], LIMIT);
    assert_eq!((got.status, got.version.as_str()), (200, "2"), "{got:?}");
    assert!(!logs.join("tls-cert.pem").exists());
}

#[test]
fn the_self_signed_certificate_is_made_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls-cert.pem");
    let verified = |d: &Daemon| {
        let url = format!("https://{}/", https_of(d));
        let cacert = cert.display().to_string();
        fetch(&["--cacert", &cacert, "-o", "/dev/null", &url], LIMIT)
    };
    let mut first = Launch::new(dir.path()).start();
    first.wait_stderr("https: made a self-signed certificate");
    assert_eq!(verified(&first).status, 200);
    let pem = std::fs::read(&cert).unwrap();
    let key = std::fs::metadata(dir.path().join("tls-key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    assert_eq!(first.terminate().code(), Some(0));
    let second = Launch::new(dir.path()).start();
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
    assert_eq!(verified(&second).status, 200);
    assert!(!second.stderr_text().contains("made a self-signed"));
}

#[test]
fn https_and_the_endpoints_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = Launch::new(dir.path())
        .args(["--no-https", "--no-nq"])
        .start();
    assert!(d.https.is_none(), "{}", d.banner());
    assert!(!d.banner().contains("https"), "{}", d.banner());
    assert_eq!(http_get(d.http, "/.well-known/nq").unwrap().status, 404);
    assert_eq!(http_get(d.http, "/nq/small").unwrap().status, 404);
    assert!(!dir.path().join("tls-cert.pem").exists());
}

#[test]
fn the_endpoints_are_fenced_by_allow_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let fenced = Launch::new(dir.path())
        .args(["--allow", "192.0.2.0/24"])
        .start();
    for path in ["/.well-known/nq", "/nq/small", "/nq/large"] {
        assert_eq!(http_get(fenced.http, path).unwrap().status, 403, "{path}");
    }
    assert_eq!(
        http_post(fenced.http, "/nq/upload", b"x").unwrap().status,
        403
    );
    drop(fenced);
    let other = tempfile::tempdir().unwrap();
    let d = Launch::new(other.path())
        .args(["--nq-max-transfers", "2"])
        .start();
    // Two downloads nobody reads hold both slots...
    let held: Vec<_> = (0..2).map(|_| unread(d.http, "/nq/large")).collect();
    assert!(held.iter().all(|(status, _)| *status == 200));
    assert_eq!(http_get(d.http, "/nq/large").unwrap().status, 503);
    assert_eq!(http_post(d.http, "/nq/upload", b"x").unwrap().status, 503);
    // ...small ones and the document are not transfers.
    assert_eq!(http_get(d.http, "/nq/small").unwrap().status, 200);
    drop(held);
    wait_until(Duration::from_secs(10), "a slot free again", || {
        http_get(d.http, "/nq/small").is_ok()
            && http_post(d.http, "/nq/upload", b"x").is_ok_and(|r| r.status == 200)
    });
}

/// The routes served in-process with `settings`, the HTTPS listener beside
/// the plain one; their addresses.
fn serve_both(env: &Env, settings: &webperf3::http::HttpSettings) -> (SocketAddr, SocketAddr) {
    let loopback = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let plain = webperf3::http::bind(loopback).unwrap();
    let tls = webperf3::http::bind_https(loopback).unwrap();
    let addrs = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    let (config, _) = webperf3::http::tls::server_config(None, env.dir.path()).unwrap();
    let plain = tokio::net::TcpListener::from_std(plain).unwrap();
    let tls = tokio::net::TcpListener::from_std(tls).unwrap();
    let https = webperf3::http::TlsListener::new(tls, config);
    let ctx = env.ctx.clone().with_settings(settings);
    tokio::spawn(webperf3::http::serve_all(plain, Some(https), ctx));
    addrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_end_at_their_time_limit_and_silent_tls_clients_are_dropped() {
    let env = Env::empty();
    let mut settings = webperf3::http::HttpSettings {
        header_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    settings.nq.max_time = Duration::from_secs(2);
    let (plain, https) = serve_both(&env, &settings);
    tokio::task::spawn_blocking(move || {
        // A download ends by itself at the limit (curl sees a whole body).
        let started = Instant::now();
        let url = format!("https://{https}/nq/large");
        let down = get("--http2", &url, &["-o", "/dev/null"]);
        assert_eq!((down.exit, down.status), (Some(0), 200), "{down:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "{took:?}"
        );
        // An upload that trickles is answered 408 at the limit.
        let started = Instant::now();
        let mut conn = std::net::TcpStream::connect(plain).unwrap();
        use std::io::{Read, Write};
        write!(
            conn,
            "POST /nq/upload HTTP/1.1\r\nHost: {plain}\r\nContent-Length: 1000000\r\n\r\nx"
        )
        .unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 408");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "{took:?}"
        );
        // A client that connects and never starts TLS is dropped.
        let mut silent = std::net::TcpStream::connect(https).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let n = silent.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    })
    .await
    .unwrap();
}
