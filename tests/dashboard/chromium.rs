//! Headless Chromium for the page tests: one-shot runs (the DOM after the
//! scripts ran, or a screenshot). The page driven over the DevTools
//! protocol ([`Browser`]) is shared with the benches, in `tests/support`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::support::browser::{chromium, Browser, HEADLESS};

/// Runs headless Chromium on `url` with `extra` arguments and returns its
/// standard output; fails the test if it does not finish in time.
pub fn chromium_run(url: &str, extra: &[&str]) -> String {
    let chromium = chromium();
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args(HEADLESS)
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
pub fn dump_dom(url: &str) -> String {
    chromium_run(url, &["--virtual-time-budget=10000", "--dump-dom"])
}

/// Writes a PNG of `url` at `width`×`height` CSS pixels to `file`, after
/// the page had time to load and draw.
pub fn screenshot(url: &str, file: &Path, width: u32, height: u32) {
    let _ = std::fs::remove_file(file);
    chromium_run(
        url,
        &[
            "--virtual-time-budget=10000",
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", file.display()),
        ],
    );
    assert!(file.exists(), "{} written", file.display());
}
