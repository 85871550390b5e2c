//! The page in real headless Chromium: client-supplied names are shown as
//! text, never run as markup; the latest table has one row per port. Plus
//! an ignored helper that takes screenshots for a person to look at.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Runs headless Chromium on `url` with `extra` arguments and returns its
/// standard output; fails the test if it does not finish in time.
fn chromium_run(url: &str, extra: &[&str]) -> String {
    let chromium = chromium();
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The rendered DOM of `url` after its scripts ran.
fn dump_dom(url: &str) -> String {
    chromium_run(url, &["--virtual-time-budget=10000", "--dump-dom"])
}

/// The text between `start` (first occurrence) and the next `end` after it.
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the page:\n{text}"));
    let rest = &text[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} not after {start:?}"));
    &rest[..to]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_text_never_markup() {
    let env = Env::with_logs(&[P1, P2, 5203], &[(P1, XSS)]);
    let url = format!("http://{}/", env.serve());
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .unwrap();

    assert!(
        dom.contains("<title>webperf3</title>"),
        "document title changed:\n{dom}"
    );
    assert!(
        !dom.contains("pwned</title>"),
        "the name's script ran:\n{dom}"
    );
    assert!(!dom.contains("<img"), "the name became an element:\n{dom}");

    let latest = section(&dom, "<table id=\"latest\"", "</table>");
    let body = section(latest, "<tbody>", "</tbody>");
    let rows: Vec<&str> = body.split("<tr").skip(1).collect();
    assert_eq!(rows.len(), 3, "one row per port:\n{body}");
    for (row, port) in rows.iter().zip([P1, P2, 5203]) {
        assert!(
            row.contains(&format!("data-port=\"{port}\"")),
            "row order: {row}"
        );
    }
    let escaped = XSS_NAME.replace('<', "&lt;").replace('>', "&gt;");
    assert!(
        rows[0].contains(&escaped),
        "the name is shown as text in its row:\n{}",
        rows[0]
    );
    // The history lists it as text too.
    let history = section(&dom, "<table id=\"history\"", "</table>");
    assert!(history.contains(&escaped), "{history}");
}

/// Writes `/tmp/dash.png` (1200×900), `/tmp/dash-full.png` (the whole page)
/// and `/tmp/dash-phone.png` (400 wide)
/// of the page with a few results, for a person to look at:
/// `cargo test --test dashboard screenshots -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes screenshots to /tmp for manual review"]
async fn screenshots() {
    let env = Env::with_logs(&[P1, P2, 5203, 5204], &[(P1, STOCK), (5203, XSS)]);
    env.hub.record_entry(P2, &entry_named(STOCK, "judy-phone"));
    env.hub.test_started(
        5204,
        "::ffff:192.168.1.23".parse().unwrap(),
        Some("kate-laptop".into()),
    );
    env.hub.progress(5204, 8.12e8, 3.0);
    let url = format!("http://{}/", env.serve());
    tokio::task::spawn_blocking(move || {
        for (file, size) in [
            ("/tmp/dash.png", "1200,900"),
            ("/tmp/dash-full.png", "1200,2000"),
            ("/tmp/dash-phone.png", "400,2600"),
        ] {
            let _ = std::fs::remove_file(file);
            chromium_run(
                &url,
                &[
                    "--virtual-time-budget=10000",
                    &format!("--window-size={size}"),
                    &format!("--screenshot={file}"),
                ],
            );
            assert!(Path::new(file).exists(), "{file} written");
        }
    })
    .await
    .unwrap();
}
