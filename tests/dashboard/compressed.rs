//! Compressed answers, fetched with a real curl from the real binary over
//! a generated history: the page and its files, a page of results, the
//! buckets and the devices gzipped for a client that takes it (right
//! headers, the same content), plain for one that does not; and the
//! history's filters by part of a name and by kind.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::history_gen::write_history;
use crate::support::daemon::Daemon;

/// One answer as curl got it: status line and headers (lower case), body.
struct Fetched {
    headers: String,
    body: Vec<u8>,
}

/// `GET path` with curl; `compressed` asks for gzip (and decodes it).
fn curl(d: &Daemon, dir: &Path, path: &str, extra: &[&str]) -> Fetched {
    let (head, body) = (dir.join("head"), dir.join("body"));
    let url = format!("http://{}{path}", d.http);
    let out = Command::new("curl")
        .args(["-sS", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(extra)
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("curl is needed (Debian package curl): {e}"));
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fetched {
        headers: std::fs::read_to_string(&head).unwrap().to_lowercase(),
        body: std::fs::read(&body).unwrap(),
    }
}

fn has(headers: &str, line: &str) -> bool {
    headers.lines().any(|l| l.trim() == line)
}

#[test]
fn curl_gets_the_page_and_large_answers_gzipped_and_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_history(&logs.join("port-9.json"), 2_000);
    let d = Daemon::start(&logs, &[]);
    for path in [
        "/",
        "/assets/app.js",
        "/api/results?limit=200",
        "/api/history/buckets?buckets=50",
        "/api/devices",
        "/api/devices?name=user-01",
    ] {
        let packed = curl(&d, dir.path(), path, &["--compressed"]);
        assert!(
            has(&packed.headers, "content-encoding: gzip"),
            "{path}: {}",
            packed.headers
        );
        assert!(
            packed.headers.contains("vary: accept-encoding"),
            "{path}: {}",
            packed.headers
        );
        // Asked for raw: gzip's magic bytes.
        let raw = curl(&d, dir.path(), path, &["-H", "Accept-Encoding: gzip"]);
        assert_eq!(&raw.body[..2], &[0x1f, 0x8b], "{path}");
        let plain = curl(&d, dir.path(), path, &[]);
        assert!(
            !plain.headers.contains("content-encoding"),
            "{path}: {}",
            plain.headers
        );
        assert!(plain.headers.contains("vary: accept-encoding"), "{path}");
        assert!(raw.body.len() < plain.body.len() / 2, "{path}: not smaller");
        assert_eq!(packed.body, plain.body, "{path}: not the same content");
    }
    // The gzipped page has its own ETag, and revalidates with it.
    let packed = curl(&d, dir.path(), "/assets/app.js", &["--compressed"]);
    let etag = packed
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_string();
    assert!(etag.ends_with("-gz\""), "{etag}");
    let again = curl(
        &d,
        dir.path(),
        "/assets/app.js",
        &["--compressed", "-H", &format!("If-None-Match: {etag}")],
    );
    assert!(
        again.headers.starts_with("http/1.1 304"),
        "{}",
        again.headers
    );
    // Small answers go as they are.
    let small = curl(&d, dir.path(), "/api/results?limit=1", &["--compressed"]);
    assert!(
        !small.headers.contains("content-encoding"),
        "{}",
        small.headers
    );
}

#[test]
fn the_history_filters_by_part_of_a_name_and_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    write_history(&dir.path().join("port-9.json"), 400);
    let d = Daemon::start(dir.path(), &[]);
    let page = |query: &str| -> Vec<Value> {
        let (status, body) = d.get(&format!("/api/results?limit=1000&{query}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let names = page("name_part=SER-0");
    assert_eq!(names.len(), 100, "user-00 to user-09");
    assert!(names
        .iter()
        .all(|r| r["name"].as_str().unwrap().starts_with("user-0")));
    let udp = page("kind=udp");
    assert!(!udp.is_empty());
    assert!(udp.iter().all(|r| r["protocol"] == "UDP"));
    let tcp = page("kind=TCP");
    assert_eq!(udp.len() + tcp.len(), 400);
    assert!(page("kind=probe").is_empty());
    assert_eq!(d.get("/api/results?limit=5&kind=icmp").0, 400);
    // The CSV names each test's kind.
    let (_, csv) = d.get("/csv");
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",Kind,Target,Headline"), "{header}");
    let second = csv.lines().nth(1).unwrap();
    assert!(
        second.contains(",tcp,,") || second.contains(",udp,,"),
        "{second}"
    );
}
