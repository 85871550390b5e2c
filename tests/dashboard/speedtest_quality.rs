//! The speed-test screen against the quality bar, on the real binary:
//! Lighthouse (the npm package, driving Debian's Chromium) with its mobile
//! settings on `/#/speedtest` (performance at least 95, accessibility and
//! best practices 100, layout shift under 0.1), and axe-core in the page
//! (no violation) in the light and the dark colour scheme, before and
//! after a run. Both come from npm into `target/lh` (`scripts/test.sh`
//! installs them); without them the test fails saying how to get them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chromium::{chromium, Browser};
use crate::support::daemon::Daemon;

/// How to install Lighthouse and axe-core, for the failure message.
const INSTALL: &str = "npm install --prefix target/lh lighthouse axe-core (scripts/test.sh does)";

/// A file of the npm packages in `target/lh`, or a failure saying how to get it.
fn lh_file(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/lh/node_modules")
        .join(rel);
    assert!(path.exists(), "{} missing: {INSTALL}", path.display());
    path
}

/// Lighthouse's report on `url` (mobile settings).
fn lighthouse(url: &str) -> Value {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new("node")
        .arg(lh_file("lighthouse/cli/index.js"))
        .arg(url)
        .args([
            "--quiet",
            "--output=json",
            "--only-categories=performance,accessibility,best-practices",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
        ])
        .arg(format!("--output-path={}", out.path().display()))
        .env("CHROME_PATH", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e} (Debian package nodejs)"));
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lighthouse on {url} did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("lighthouse wrote no report on {url}"))
}

/// axe-core's violations in the page as it stands.
async fn axe(page: &mut Browser, source: &str) -> Value {
    page.eval(&format!("{source}; true")).await;
    page.eval_settled(
        "axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations.map((v) =>
           `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`))",
        Duration::from_secs(60),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speed_test_screen_meets_the_quality_bar() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &[]);
    let url = format!("http://{}/#/speedtest", daemon.http);

    let report = tokio::task::block_in_place(|| lighthouse(&url));
    let score = |cat: &str| report["categories"][cat]["score"].as_f64().unwrap_or(0.0) * 100.0;
    let shift = report["audits"]["cumulative-layout-shift"]["numericValue"]
        .as_f64()
        .unwrap_or(f64::MAX);
    let (perf, a11y, best) = (
        score("performance"),
        score("accessibility"),
        score("best-practices"),
    );
    eprintln!(
        "speed test (mobile): performance {perf:.0}, accessibility {a11y:.0}, \
         best practices {best:.0}, layout shift {shift:.3}"
    );
    let failed: Vec<&String> = report["audits"]
        .as_object()
        .map(|a| a.keys().filter(|k| a[*k]["score"] == json!(0)).collect())
        .unwrap_or_default();
    assert!(
        perf >= 95.0 && a11y == 100.0 && best == 100.0 && shift < 0.1,
        "performance {perf}, accessibility {a11y}, best practices {best}, \
         layout shift {shift}; failed audits: {failed:?}"
    );

    let source = std::fs::read_to_string(lh_file("axe-core/axe.min.js")).unwrap();
    for scheme in ["light", "dark"] {
        let mut page = Browser::blank().await;
        page.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
        page.navigate(&format!("{url}?autostart=1")).await;
        page.eventually(
            "document.getElementById('speedtest')?.dataset.state ?? null",
            json!("running"),
        )
        .await;
        assert_eq!(
            axe(&mut page, &source).await,
            json!([]),
            "{scheme}, running"
        );
        page.eventually_within(
            "document.getElementById('speedtest').dataset.state",
            json!("done"),
            Duration::from_secs(120),
        )
        .await;
        page.eval("document.querySelector('.st-details').open = true")
            .await;
        assert_eq!(axe(&mut page, &source).await, json!([]), "{scheme}, done");
    }
}
