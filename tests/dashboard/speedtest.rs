//! ndt7 from real headless Chromium against the binary: M-Lab's own
//! JavaScript client (npm `@m-lab/ndt7`, installed into `target/ndt7-js`
//! by `scripts/test.sh`) on a page served from another origin, and the
//! dashboard's own speed test (`#/speedtest?name=...&autostart=1`). Both
//! must leave a download and an upload recorded under the name given.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::browser::HEADLESS;
use crate::common::chromium;
use crate::support::daemon::Daemon;
use crate::support::wait::wait_until;

/// Both subtests plus retries and start-up, on a busy machine.
const LIMIT: Duration = Duration::from_secs(90);

/// Where `scripts/test.sh` installs M-Lab's JavaScript client.
fn ndt7_js() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ndt7-js/node_modules/@m-lab/ndt7/src");
    assert!(
        dir.join("ndt7.js").is_file(),
        "this test needs M-Lab's ndt7-js, which is not installed; install it with: \
         npm install --prefix target/ndt7-js @m-lab/ndt7 (scripts/test.sh does)"
    );
    dir
}

/// Headless Chromium on `url`, killed when dropped (then its profile
/// directory is removed).
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args(HEADLESS)
            // Keeps the browser running until it is killed.
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Browser {
            child,
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ndt7 results of `/api/results` named `name`.
fn named(daemon: &Daemon, name: &str) -> Vec<Value> {
    let (code, body) = daemon.get(&format!("/api/results?name={name}"));
    assert_eq!(code, 200, "{body}");
    let all: Vec<Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .filter(|r| r["protocol"] == "ndt7")
        .collect()
}

fn assert_both_subtests(results: &[Value]) {
    assert!(
        results
            .iter()
            .any(|r| r["send_bps"].as_f64().is_some_and(|b| b > 0.0)),
        "a download: {results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| r["receive_bps"].as_f64().is_some_and(|b| b > 0.0)),
        "an upload: {results:?}"
    );
}

/// A tiny static web server for the other origin: `files` by name from
/// `dir`, `page` at `/`; every request path is remembered.
fn serve_static(dir: PathBuf, page: String) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &dir, &page, &log);
        }
    });
    (addr, seen)
}

fn answer(
    mut stream: TcpStream,
    dir: &Path,
    page: &str,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split(' ').nth(1).unwrap_or("/").to_string();
    seen.lock().unwrap().push(path.clone());
    let file = path
        .split('?')
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let (status, kind, body) = if file.is_empty() {
        ("200 OK", "text/html", page.as_bytes().to_vec())
    } else if !file.contains('/') && file.ends_with(".js") {
        match std::fs::read(dir.join(file)) {
            Ok(b) => ("200 OK", "text/javascript", b),
            Err(_) => ("404 Not Found", "text/plain", b"no".to_vec()),
        }
    } else {
        ("404 Not Found", "text/plain", b"no".to_vec())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

#[test]
fn m_labs_javascript_client_from_another_origin_is_recorded_under_its_name() {
    let js = ndt7_js();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let name = "ndt7-js-den";
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>ndt7-js</title>
<script src="ndt7.js"></script>
<script>
ndt7.test({{
  server: "{box}", protocol: "ws", userAcceptedDataPolicy: true,
  metadata: {{client_name: "ndt7-js-test", name: "{name}"}}
}}, {{
  error: (e) => fetch("/error?" + encodeURIComponent(String(e))),
}}).then((code) => fetch("/done?code=" + code));
</script>"#,
        box = daemon.http
    );
    let (origin, seen) = serve_static(js, page);
    let _browser = Browser::open(&format!("http://{origin}/"));
    wait_until(LIMIT, "ndt7-js to finish", || {
        seen.lock().unwrap().iter().any(|p| p.starts_with("/done"))
    });
    let paths = seen.lock().unwrap().clone();
    assert!(paths.iter().any(|p| p == "/done?code=0"), "{paths:?}");
    // One run: both subtests in one result.
    wait_until(LIMIT, "both subtests recorded as one run", || {
        let run = named(&daemon, name);
        run.len() == 1 && run[0]["receive_bps"].is_number()
    });
    assert_both_subtests(&named(&daemon, name));
}

#[test]
fn the_dashboards_speed_test_starts_by_itself_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let name = "kitchen-tablet";
    let url = format!("http://{}/#/speedtest?name={name}&autostart=1", daemon.http);
    let _browser = Browser::open(&url);
    // One run: both subtests in one result.
    wait_until(LIMIT, "both subtests recorded as one run", || {
        let run = named(&daemon, name);
        run.len() == 1 && run[0]["receive_bps"].is_number()
    });
    assert_both_subtests(&named(&daemon, name));
}
