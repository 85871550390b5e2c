//! Page quality against the real binary with a 100,000-test history:
//! Lighthouse (the npm package, driving Debian's Chromium) at mobile and
//! desktop settings and axe-core (in the page, light and dark) on the
//! dashboard, a device's view and one test in detail. Both come from npm
//! into `target/lh` (`scripts/test.sh` installs them); without them the
//! test fails saying how to install them. [`assert_quality`] is the check
//! for any view of the page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chromium::{chromium, Browser};
use crate::history_gen::{name_of, write_history};
use crate::support::daemon::{Daemon, Launch};

/// Where `scripts/test.sh` installs Lighthouse and axe-core.
const LH_DIR: &str = "target/lh";
/// How to install them, for the failure message.
const INSTALL: &str =
    "npm install --prefix target/lh lighthouse axe-core (scripts/test.sh does this)";

/// The least each Lighthouse category may score (0 to 100), and the most
/// layout shift a page may cause.
pub struct Bar {
    pub performance: f64,
    pub accessibility: f64,
    pub best_practices: f64,
    pub seo: f64,
    pub layout_shift: f64,
}

/// The bar of every view: performance 95, accessibility and best
/// practices 100, SEO 90, layout shift under 0.1.
pub const BAR: Bar = Bar {
    performance: 95.0,
    accessibility: 100.0,
    best_practices: 100.0,
    seo: 90.0,
    layout_shift: 0.1,
};

/// A file of the npm packages in `target/lh`, or a failure saying how to get it.
fn lh_file(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(LH_DIR)
        .join("node_modules")
        .join(rel);
    assert!(path.exists(), "{} missing: {INSTALL}", path.display());
    path
}

/// One Lighthouse run's scores (0 to 100) and layout shift.
#[derive(Debug)]
pub struct Scores {
    pub performance: f64,
    pub accessibility: f64,
    pub best_practices: f64,
    pub seo: f64,
    pub layout_shift: f64,
    /// The audits that failed, with what they say (for the failure message).
    pub failed: Vec<String>,
}

/// Runs Lighthouse on `url` with mobile (`desktop` false) or desktop settings.
pub fn lighthouse(url: &str, desktop: bool) -> Scores {
    let cli = lh_file("lighthouse/cli/index.js");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(&cli)
        .arg(url)
        .args([
            "--quiet",
            "--output=json",
            "--only-categories=performance,accessibility,best-practices,seo",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
        ])
        .arg(format!("--output-path={}", out.path().display()))
        .env("CHROME_PATH", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if desktop {
        cmd.arg("--preset=desktop");
    }
    let mut child = cmd
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
    let output = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!(
            "lighthouse wrote no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let score = |cat: &str| report["categories"][cat]["score"].as_f64().unwrap_or(0.0) * 100.0;
    let failed = report["audits"]
        .as_object()
        .map(|audits| {
            audits
                .iter()
                .filter(|(_, a)| a["score"].as_f64().is_some_and(|s| s < 0.9))
                .map(|(k, a)| format!("{k}: {}", a["displayValue"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    Scores {
        performance: score("performance"),
        accessibility: score("accessibility"),
        best_practices: score("best-practices"),
        seo: score("seo"),
        layout_shift: report["audits"]["cumulative-layout-shift"]["numericValue"]
            .as_f64()
            .unwrap_or(f64::MAX),
        failed,
    }
}

/// axe-core's violations on the page `url` once `ready` (a JavaScript
/// expression) is true, in the light or the dark colour scheme.
pub async fn axe(url: &str, ready: &str, dark: bool) -> Vec<String> {
    let mut page = page_in(if dark { "dark" } else { "light" }).await;
    page.navigate(url).await;
    page.eventually(ready, json!(true)).await;
    axe_now(&mut page).await
}

/// A blank page in the light or the dark colour `scheme`.
pub async fn page_in(scheme: &str) -> Browser {
    let mut page = Browser::blank().await;
    page.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
    )
    .await;
    page
}

/// axe-core's violations in `page` as it stands.
pub async fn axe_now(page: &mut Browser) -> Vec<String> {
    let source = std::fs::read_to_string(lh_file("axe-core/axe.min.js")).unwrap();
    page.eval(&format!("{source}; true")).await;
    let found = page
        .eval_settled(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>
               `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')})`))",
            Duration::from_secs(60),
        )
        .await;
    serde_json::from_value(found).unwrap()
}

/// Lighthouse (mobile and desktop) meets [`BAR`] on `url`, and axe-core
/// finds nothing in light and dark once `ready` holds; `what` names the
/// view in messages. Returns the figures as lines for a report. (For one
/// view's own test; the test below checks three views, then fails once.)
pub async fn assert_quality(what: &str, url: &str, ready: &str) -> Vec<String> {
    let (lines, problems) = check_quality(what, url, ready).await;
    assert!(problems.is_empty(), "{problems:#?}");
    lines
}

/// [`assert_quality`] without the assertion: the figures, and what falls
/// short of the bar.
pub async fn check_quality(what: &str, url: &str, ready: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for desktop in [false, true] {
        let s = tokio::task::block_in_place(|| lighthouse(url, desktop));
        let form = if desktop { "desktop" } else { "mobile" };
        let line = format!(
            "{what} ({form}): performance {:.0}, accessibility {:.0}, best practices {:.0}, \
             SEO {:.0}, layout shift {:.3}",
            s.performance, s.accessibility, s.best_practices, s.seo, s.layout_shift
        );
        let ok = s.performance >= BAR.performance
            && s.accessibility >= BAR.accessibility
            && s.best_practices >= BAR.best_practices
            && s.seo >= BAR.seo
            && s.layout_shift < BAR.layout_shift;
        if !ok {
            problems.push(format!("{line}; failed audits: {:?}", s.failed));
        }
        lines.push(line);
    }
    for dark in [false, true] {
        let found = axe(url, ready, dark).await;
        let scheme = if dark { "dark" } else { "light" };
        lines.push(format!(
            "{what} ({scheme}): axe-core violations {}",
            found.len()
        ));
        if !found.is_empty() {
            problems.push(format!("{what} ({scheme}): axe-core: {found:?}"));
        }
    }
    for line in &lines {
        eprintln!("quality: {line}");
    }
    (lines, problems)
}

/// Starts the binary on a history of `tests` generated tests.
fn big_daemon(dir: &Path, tests: usize) -> Daemon {
    write_history(&dir.join("port-5201.json"), tests);
    let launch = Launch::new(dir).start_deadline(Duration::from_secs(600));
    match std::env::var_os("WEBPERF3_BIN") {
        Some(bin) => launch.binary(Path::new(&bin)),
        None => launch,
    }
    .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighthouse_and_axe_pass_on_every_view() {
    lh_file("lighthouse/cli/index.js");
    lh_file("axe-core/axe.min.js");
    let dir = tempfile::tempdir().unwrap();
    let daemon = tokio::task::block_in_place(|| big_daemon(dir.path(), 100_000));
    let base = format!("http://{}/", daemon.http);
    let (_, body) = daemon.get("/api/results?limit=1");
    let newest: Value = serde_json::from_str(&body).unwrap();
    let id = newest[0]["id"].as_str().unwrap().to_string();
    let device = name_of(3);
    let views = [
        (
            "dashboard",
            base.clone(),
            "!document.getElementById('view-home').classList.contains('pending') \
             && document.getElementById('chart').dataset.drawn === 'yes'"
                .to_string(),
        ),
        (
            "device",
            format!("{base}#/device/{device}"),
            "document.getElementById('device').dataset.state === 'shown' \
             && document.getElementById('device-chart').dataset.drawn === 'yes'"
                .to_string(),
        ),
        (
            "detail",
            format!("{base}#/test/{id}"),
            "document.getElementById('detail').dataset.state === 'shown'".to_string(),
        ),
    ];
    let mut problems = Vec::new();
    for (what, url, ready) in views {
        problems.extend(check_quality(what, &url, &ready).await.1);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
