//! Micro-benches of the paths that do not move test data but can still be
//! slow: loading the logs at start-up, answering `/api/results` and `/csv`,
//! and the per-datagram UDP receive accounting.
//!
//! Plain timing loops (`std::hint::black_box`, median of several samples)
//! rather than a framework: each figure is one clear loop, and the bench
//! adds no dependency. Parts are picked by name after `--`
//! (`cargo bench --bench micro -- load http udp`); `WEBPERF3_MICRO_MAX_N`
//! caps the number of logged tests for `load` (default 100000).
//! `history` runs the binary itself over 100k and 1M logged tests
//! (`WEBPERF3_HISTORY_MAX_N` caps it): start-up time, memory per test, the
//! history routes' latency, and the page in headless Chromium (`paint.rs`).
//!
//! The logs are real stock iperf3 3.12 server entries
//! (`tests/fixtures/stock-3.12.json`: TCP, `-R`, `-P 2`, UDP, paced)
//! repeated with fresh timestamps and client names, spread over four
//! `port-<N>.json` files in a temp dir.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webperf3::files::log_dir::LogDir;
use webperf3::hub::Hub;
use webperf3::protocol::udp::{decode_header, encode_header, Header, Receiver, Stamp};

#[path = "micro/paint.rs"]
mod paint;
#[path = "../tests/support/mod.rs"]
mod support;

const FIXTURE: &str = include_str!("../tests/fixtures/stock-3.12.json");
const PORTS: [u16; 4] = [5201, 5202, 5203, 5204];
const PARTS: [&str; 4] = ["load", "http", "udp", "history"];

fn main() -> std::process::ExitCode {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !PARTS.contains(&w.as_str())) {
        eprintln!(
            "micro bench: unknown part {bad:?}; parts: {}",
            PARTS.join(", ")
        );
        return std::process::ExitCode::FAILURE;
    }
    let run = |part: &str| wanted.is_empty() || wanted.iter().any(|w| w == part);
    let max_n = std::env::var("WEBPERF3_MICRO_MAX_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100_000);
    if run("load") {
        bench_load(max_n);
    }
    if run("http") {
        bench_http();
    }
    if run("udp") {
        bench_udp();
    }
    if run("history") {
        let max = std::env::var("WEBPERF3_HISTORY_MAX_N")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000_000);
        bench_history(max);
    }
    std::process::ExitCode::SUCCESS
}

/// CPU time the whole process has used, every thread's (less disturbed
/// than wall time by other work on a shared machine; loading the logs uses
/// a thread per core, whose time a per-thread clock would miss).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Times `f` once to warm up, then `samples` times; prints the median wall
/// and process CPU times and returns the median CPU time. What `f` returns
/// is dropped after the clocks stop (start-up keeps what it loaded).
fn measure<R>(name: &str, samples: usize, mut f: impl FnMut() -> R) -> Duration {
    black_box(f());
    let (mut wall, mut cpu): (Vec<Duration>, Vec<Duration>) = (0..samples.max(1))
        .map(|_| {
            let (t, c) = (Instant::now(), process_cpu());
            let out = black_box(f());
            let times = (t.elapsed(), process_cpu().saturating_sub(c));
            drop(out);
            times
        })
        .unzip();
    wall.sort();
    cpu.sort();
    let (wall, cpu) = (wall[wall.len() / 2], cpu[cpu.len() / 2]);
    println!(
        "{name:<44} cpu {:>11}  wall {:>11}  (medians of {samples})",
        show(cpu),
        show(wall),
    );
    cpu
}

fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} µs", s * 1e6)
    }
}

// ---------------------------------------------------------------- logs

/// The fixture's test entries, each the text from a `{` line to its `}`
/// line (its last entry, a server shut down before any test, is left out so
/// that N entries are N tests).
fn fixture_entries() -> Vec<String> {
    let entries: Vec<String> = support::logs::entry_texts(FIXTURE)
        .into_iter()
        .filter(|text| text.contains("\"test_start\""))
        .collect();
    assert!(!entries.is_empty(), "no entries in the fixture");
    entries
}

/// Entry `i`: a fixture entry with timestamp `t0 + i` and, where it has a
/// name, a per-client one.
fn entry(templates: &[String], i: usize, t0: i64) -> String {
    let template = &templates[i % templates.len()];
    let mut out = String::with_capacity(template.len() + 16);
    for line in template.lines() {
        if let Some((key, _)) = line.split_once("\"timesecs\":") {
            out.push_str(&format!("{key}\"timesecs\":\t{}", t0 + i as i64));
        } else if let Some((key, _)) = line.split_once("\"extra_data\":") {
            out.push_str(&format!("{key}\"extra_data\":\t\"host-{:02}\"", i % 37));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Writes `n` entries round-robin over the ports' logs (streamed, so the
/// bench itself holds little memory); returns the bytes written.
fn write_logs(dir: &Path, n: usize) -> usize {
    use std::io::Write;
    let templates = fixture_entries();
    let logs = LogDir::open(dir).expect("temp log dir");
    let mut files: Vec<_> = PORTS
        .iter()
        .map(|&port| {
            let f = std::fs::File::create(logs.path(port)).expect("create log");
            std::io::BufWriter::new(f)
        })
        .collect();
    let mut bytes = 0;
    for i in 0..n {
        let text = entry(&templates, i, 1_700_000_000);
        files[i % PORTS.len()]
            .write_all(text.as_bytes())
            .expect("write log");
        bytes += text.len();
    }
    for mut f in files {
        f.flush().expect("write log");
    }
    bytes
}

fn bench_load(max_n: usize) {
    println!("== loading the logs at start-up (LogDir::load, page cache warm)");
    for n in [1_000, 10_000, 100_000] {
        if n > max_n {
            println!("load {n} tests: skipped (WEBPERF3_MICRO_MAX_N={max_n})");
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = write_logs(dir.path(), n);
        let logs = LogDir::open(dir.path()).expect("log dir");
        let loaded = logs.load(&PORTS);
        assert_eq!(loaded.store.len(), n, "every entry loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let samples = if n >= 100_000 { 3 } else { 7 };
        // Each sample parses: the index the last load wrote is removed.
        let index = dir.path().join(".index");
        let t = measure(
            &format!("load {n} tests ({:.0} MB)", bytes as f64 / 1e6),
            samples,
            || {
                let _ = std::fs::remove_dir_all(&index);
                logs.load(&PORTS)
            },
        );
        println!(
            "{:<44}   = {:.1} µs CPU per test, {:.0} MB/s; peak RSS so far {:.0} MB",
            "",
            t.as_secs_f64() * 1e6 / n as f64,
            bytes as f64 / 1e6 / t.as_secs_f64(),
            peak_rss_mb()
        );
        let indexed = measure(&format!("load {n} tests from the index"), samples, || {
            logs.load(&PORTS)
        });
        println!(
            "{:<44}   = {:.2} µs CPU per test",
            "",
            indexed.as_secs_f64() * 1e6 / n as f64
        );
    }
}

/// The most memory this process has held at once, MB (the loads above are
/// the only large holders).
fn peak_rss_mb() -> f64 {
    // SAFETY: rusage is plain old data filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    ru.ru_maxrss as f64 / 1024.0
}

// ---------------------------------------------------------------- http

fn bench_http() {
    const N: usize = 10_000;
    println!("== dashboard answers with {N} recorded tests (in-process, warp::test)");
    let dir = tempfile::tempdir().expect("temp dir");
    write_logs(dir.path(), N);
    let logs = LogDir::open(dir.path()).expect("log dir");
    let loaded = logs.load(&PORTS);
    assert_eq!(loaded.store.len(), N);
    let hub: Arc<Hub> = Hub::new(logs, loaded.store);
    let ctx = webperf3::http::Context::new(hub, webperf3::shutdown::Shutdown::new());
    let routes = webperf3::http::routes(ctx);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for path in ["/api/results", "/csv"] {
        let get = || {
            rt.block_on(
                warp::test::request()
                    .method("GET")
                    .path(path)
                    .reply(&routes),
            )
        };
        let first = get();
        assert_eq!(first.status(), 200, "{path}");
        let size = first.body().len();
        let t = measure(
            &format!("GET {path} ({:.1} MB)", size as f64 / 1e6),
            15,
            get,
        );
        println!(
            "{:<44}   = {:.2} µs CPU per test",
            "",
            t.as_secs_f64() * 1e6 / N as f64
        );
    }
}

// ---------------------------------------------------------------- history

/// Wall time of `f`, median of `samples` runs after one to warm up.
fn wall<R>(samples: usize, mut f: impl FnMut() -> R) -> Duration {
    black_box(f());
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The binary over a log dir: its start-up time (spawn to start-up line)
/// and the CPU time it took to get there (user + system, every thread: on
/// a busy machine the steadier figure).
fn start_daemon(dir: &Path) -> (support::daemon::Daemon, Duration, Duration) {
    let t = Instant::now();
    let daemon = support::daemon::Launch::new(dir)
        .start_deadline(Duration::from_secs(900))
        .start();
    let took = t.elapsed();
    let cpu = process_cpu_of(daemon.pid());
    (daemon, took, cpu)
}

/// CPU time process `pid` has used so far (`/proc/<pid>/stat`).
fn process_cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last `)`).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn bench_history(max_n: usize) {
    println!("== the binary over a long history (release build, page cache warm)");
    let empty = tempfile::tempdir().expect("temp dir");
    let (daemon, _, _) = start_daemon(empty.path());
    let empty_rss = daemon.status_kb("VmRSS");
    daemon.stop();
    println!("{:<44} RSS {empty_rss} kB", "no tests logged");
    for n in [100_000, 1_000_000] {
        if n > max_n {
            println!("history {n} tests: skipped (WEBPERF3_HISTORY_MAX_N={max_n})");
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let t = Instant::now();
        let bytes = write_logs(dir.path(), n);
        println!(
            "{:<44} {:.1} s",
            format!("write {n} tests ({:.0} MB)", bytes as f64 / 1e6),
            t.elapsed().as_secs_f64()
        );
        let load = || {
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split(' ')
                .next()
                .unwrap_or("?")
                .to_string()
        };
        let per_test = |rss: u64| (rss.saturating_sub(empty_rss) * 1024) as f64 / n as f64;
        // The first start parses every log and writes its index
        // (`<log-dir>/.index/`); the second reads the indexes.
        let (daemon, first, first_cpu) = start_daemon(dir.path());
        let first_rss = daemon.status_kb("VmRSS");
        daemon.stop();
        println!(
            "{:<44} wall {:.3} s, CPU {:.3} s (load average {}); {:.0} bytes per test",
            format!("first start, {n} tests (parse + index)"),
            first.as_secs_f64(),
            first_cpu.as_secs_f64(),
            load(),
            per_test(first_rss)
        );
        let index_bytes: u64 = std::fs::read_dir(dir.path().join(".index"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        println!(
            "{:<44} {:.1} MB, {:.0} bytes per test",
            format!("index of {n} tests on disk"),
            index_bytes as f64 / 1e6,
            index_bytes as f64 / n as f64
        );
        let (daemon, took, cpu) = start_daemon(dir.path());
        println!(
            "{:<44} wall {:.3} s, CPU {:.3} s (load average {})",
            format!("second start, {n} tests (index)"),
            took.as_secs_f64(),
            cpu.as_secs_f64(),
            load()
        );
        let rss = daemon.status_kb("VmRSS");
        let hwm = daemon.status_kb("VmHWM");
        println!(
            "{:<44} RSS {rss} kB (peak {hwm} kB): {:.0} bytes per test over an empty start",
            format!("memory with {n} tests"),
            per_test(rss)
        );
        let (status, page) = daemon.get("/api/results?limit=500");
        assert_eq!(status, 200);
        let page: serde_json::Value = serde_json::from_str(&page).expect("JSON");
        assert_eq!(page.as_array().map(Vec::len), Some(500));
        let id = page[0]["id"].as_str().expect("an id").to_string();
        let routes = [
            "/api/results?limit=500".to_string(),
            format!("/api/results?limit=500&before={id}"),
            "/api/results?limit=50&name=host-07&protocol=tcp".to_string(),
            format!("/api/results/{id}"),
            "/api/history/buckets?buckets=500".to_string(),
            "/api/history/buckets?buckets=200&name=host-07".to_string(),
        ];
        for path in &routes {
            let t = wall(9, || {
                let (status, body) = daemon.get(path);
                assert_eq!(status, 200, "{path}: {body}");
            });
            println!(
                "{:<44} {:.2} ms",
                format!("GET {path}"),
                t.as_secs_f64() * 1e3
            );
        }
        let mut size = 0;
        let t = wall(1, || {
            let (status, body) = daemon.get("/api/results");
            assert_eq!(status, 200);
            size = body.len();
        });
        println!(
            "{:<44} {:.2} s, {:.0} MB streamed; peak RSS after {} kB",
            "GET /api/results (everything)",
            t.as_secs_f64(),
            size as f64 / 1e6,
            daemon.status_kb("VmHWM")
        );
        paint::bench_page(&daemon, n);
        daemon.stop();
    }
}

// ---------------------------------------------------------------- udp

fn bench_udp() {
    // As the receive loop sees them: batches of 64 datagrams of 1400 bytes
    // in one buffer, one arrival time per batch.
    const LEN: usize = 1400;
    const BATCH: usize = 64;
    const BATCHES: usize = 64;
    const COUNT: usize = BATCH * BATCHES;
    println!("== UDP receive accounting (decode_header + Receiver::on_datagram)");
    let mut bufs = vec![0u8; COUNT * LEN];
    // Sequence numbers with some loss (every 997th missing) and reordering
    // (every 499th pair swapped), as a busy link gives.
    let mut seqs: Vec<u64> = (1..=COUNT as u64 + COUNT as u64 / 997 + 1)
        .filter(|s| s % 997 != 0)
        .take(COUNT)
        .collect();
    for i in (0..COUNT - 1).step_by(499) {
        seqs.swap(i, i + 1);
    }
    for (i, seq) in seqs.iter().enumerate() {
        let sent = Stamp::from_nanos(5_000_000_000 + i as u64 * 11_200);
        encode_header(
            &mut bufs[i * LEN..(i + 1) * LEN],
            Header { sent, seq: *seq },
            false,
        );
    }
    let pass = || {
        let mut rx = Receiver::default();
        let mut bytes = 0u64;
        for b in 0..BATCHES {
            let arrived = Stamp::from_nanos(5_000_050_000 + (b * BATCH) as u64 * 11_200);
            for i in b * BATCH..(b + 1) * BATCH {
                let datagram = black_box(&bufs[i * LEN..(i + 1) * LEN]);
                if let Some(h) = decode_header(datagram, false) {
                    bytes += LEN as u64;
                    rx.on_datagram(h, arrived);
                }
            }
        }
        (rx, bytes)
    };
    let (rx, _) = pass();
    assert!(rx.lost > 0 && rx.out_of_order > 0, "{rx:?}");
    let t = measure(&format!("{COUNT} datagrams of {LEN} bytes"), 201, pass);
    let per = t.as_secs_f64() / COUNT as f64;
    println!(
        "{:<44}   = {:.2} ns CPU per datagram ({:.0} M datagrams/s, {:.0} Gbit/s of {LEN}-byte payload)",
        "",
        per * 1e9,
        1e-6 / per,
        LEN as f64 * 8.0 / per / 1e9
    );
}
