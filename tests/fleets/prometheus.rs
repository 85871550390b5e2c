//! `/metrics` against the real Prometheus tools: `promtool check metrics`
//! on our output, `promtool check config`/`check rules`/`test rules` on
//! `dist/prometheus/`, and a real Prometheus scraping the binary every
//! second while stock clients run tests, queried through its HTTP API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{Daemon, Launch};
use crate::support::http::http_get;
use crate::support::iperf3;
use crate::support::process::{run_bounded, Spawned};
use crate::support::tools;
use crate::support::wait::{poll_until, wait_until};

fn promtool() -> PathBuf {
    tools::require("promtool", &["promtool"], "prometheus")
}

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist")
}

/// Runs promtool with `args` in `dir`; its exit status must be 0. Returns
/// stdout and stderr together.
fn promtool_ok(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(promtool());
    cmd.current_dir(dir).args(args);
    let out = match stdin {
        None => run_bounded(&mut cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}")),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            crate::support::process::wait_output(child, Duration::from_secs(60))
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn dist_prometheus_configs_and_rules_pass_promtool() {
    let dir = dist().join("prometheus");
    promtool_ok(&dir, &["check", "config", "prometheus.yml"], None);
    promtool_ok(&dir, &["check", "config", "fleet.yml"], None);
    promtool_ok(&dir, &["check", "config", "probes.yml"], None);
    promtool_ok(&dir, &["check", "rules", "rules/webperf3.rules.yml"], None);
    let out = promtool_ok(
        &dir,
        &["test", "rules", "rules/webperf3.rules.test.yml"],
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A stand-in for a Pi's sysfs: 56 °C, throttled now.
fn fake_sysfs(root: &Path) {
    let zone = root.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("temp"), "56000\n").unwrap();
    let fw = root.join("sys/devices/platform/soc/soc:firmware");
    std::fs::create_dir_all(&fw).unwrap();
    std::fs::write(fw.join("get_throttled"), "0x50005\n").unwrap();
}

/// A real Prometheus on 127.0.0.1 (its own port, read from its log),
/// scraping `target` every second with the alert rules of `dist/`.
struct Prometheus {
    _process: Spawned,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let rules = dist().join("prometheus/rules/webperf3.rules.yml");
        Prometheus::start_with(
            dir,
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: webperf3\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
    }

    /// A real Prometheus with the configuration `config`.
    fn start_with(dir: &Path, config_text: &str) -> Prometheus {
        let exe = tools::require("Prometheus", &["prometheus"], "prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text).unwrap();
        let mut cmd = Command::new(exe);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null());
        let process = Spawned::start(&mut cmd).unwrap();
        // Port 0 is resolved by the kernel; Prometheus logs the real one.
        let line = process
            .stderr()
            .wait_for(Duration::from_secs(30), "msg=\"Listening on\"")
            .unwrap_or_else(|why| {
                panic!(
                    "Prometheus did not start ({why:?}): {}",
                    process.stderr().text()
                )
            });
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"));
        // Queries are answered 503 until the storage is open.
        process
            .stderr()
            .wait_for(
                Duration::from_secs(30),
                "Server is ready to receive web requests",
            )
            .unwrap_or_else(|why| {
                panic!(
                    "Prometheus never became ready ({why:?}): {}",
                    process.stderr().text()
                )
            });
        Prometheus {
            _process: process,
            addr,
        }
    }

    /// An instant query's result vector.
    fn query(&self, expr: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let reply = http_get(self.addr, &path).unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let v = reply.json();
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query returning one series.
    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        let v = result.first()?["value"][1].as_str()?.parse().ok()?;
        Some(v)
    }
}

/// `dist/prometheus/probes.yml` with `(from, to)` replaced, each of which
/// must be there (so a change of the shipped file shows here).
fn shipped_probe_config(replacements: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(dist().join("prometheus/probes.yml")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{from:?} not in probes.yml");
        text = text.replace(from, to);
    }
    text
}

#[test]
fn prometheus_probes_two_targets_through_the_shipped_config() {
    let (a, b) = (iperf3::StockServer::start(), iperf3::StockServer::start());
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Launch::new(&tmp.path().join("logs"))
        .args(["--probe-allow", "127.0.0.1"])
        .start();
    let targets = tmp.path().join("probe-targets");
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::write(
        targets.join("mesh.yml"),
        format!(
            "- targets: [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n  labels:\n    box: \"{}\"\n",
            a.port, b.port, daemon.http
        ),
    )
    .unwrap();
    let rules = dist().join("prometheus/rules/webperf3.rules.yml");
    let config = shipped_probe_config(&[
        ("rules/webperf3.rules.yml", rules.display().to_string()),
        (
            "probe-targets/*.yml",
            format!("{}/*.yml", targets.display()),
        ),
        // Both targets' probes fit one scrape timeout: if Prometheus
        // scrapes them at about the same time, they take turns.
        ("scrape_interval: 5m", "scrape_interval: 8s".into()),
        ("scrape_timeout: 30s", "scrape_timeout: 8s".into()),
        ("duration: [\"5\"]", "duration: [\"1\"]".into()),
    ]);
    let prom = Prometheus::start_with(tmp.path(), &config);
    let instance = daemon.http.to_string();
    for server in [&a, &b] {
        let target = format!("127.0.0.1:{}", server.port);
        let selector =
            format!("{{job=\"webperf3_probe\", instance=\"{instance}\", target=\"{target}\"}}");
        wait_until(
            Duration::from_secs(60),
            &format!("a probe of {target}"),
            || {
                prom.value(&format!(
                    "max_over_time(webperf3_probe_success{selector}[1m])"
                )) == Some(1.0)
            },
        );
        let send = format!(
            "max_over_time(webperf3_probe_throughput_bytes_per_second{{job=\"webperf3_probe\", target=\"{target}\", direction=\"send\"}}[1m])"
        );
        assert!(prom.value(&send).is_some_and(|v| v > 0.0), "{send}");
    }
    // The dashboard's mesh panel: a row for the box, a column per target.
    let probe_queries: Vec<_> = dashboard_queries()
        .into_iter()
        .filter(|(_, e)| is_probe(e))
        .collect();
    assert!(!probe_queries.is_empty(), "no probe panel in the dashboard");
    for (title, expr) in probe_queries {
        let result = prom.query(&expr);
        assert_eq!(
            result.len(),
            2,
            "dashboard panel {title:?}: {expr}: {result:?}"
        );
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every query of the Grafana dashboard, with its variables substituted:
/// all boxes, and a range covering the test.
/// Whether a query is about probes (answered only where boxes probe).
fn is_probe(expr: &str) -> bool {
    expr.contains("webperf3_probe_")
}

fn dashboard_queries() -> Vec<(String, String)> {
    let path = dist().join("grafana/dashboards/webperf3.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$job", ".*")
                .replace("$__range", "10m");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            // label_values(METRIC, label): the series must exist.
            let metric = q
                .trim_start_matches("label_values(")
                .rsplit_once(',')
                .unwrap()
                .0
                .replace("$job", ".*");
            queries.push((format!("variable {}", variable["name"]), metric));
        }
    }
    queries
}

#[test]
fn prometheus_scrapes_the_counts_of_real_tests_and_every_dashboard_query_answers() {
    iperf3::require();
    let tmp = tempfile::tempdir().unwrap();
    let sysfs = tmp.path().join("sysfs");
    fake_sysfs(&sysfs);
    let logs = tmp.path().join("logs");
    let daemon: Daemon = Launch::new(&logs)
        .env("WEBPERF3_SYSFS_ROOT", &sysfs)
        .args([
            "--forward",
            "http://127.0.0.1:9/unused",
            "--forward-retry-max",
            "1",
        ])
        .start();
    let prom = Prometheus::start(tmp.path(), daemon.http);
    wait_until(Duration::from_secs(30), "the first scrape", || {
        prom.value("up{job=\"webperf3\"}") == Some(1.0)
    });

    // Three tests: TCP, reverse TCP, and UDP last (so the port's latest
    // test has loss and jitter).
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "alice"]);
    iperf3::client_json(daemon.port, &["-t", "1", "-R"]);
    iperf3::client_json(daemon.port, &["-t", "1", "-u", "-b", "8M"]);

    let mut results: Vec<Value> = Vec::new();
    wait_until(Duration::from_secs(20), "three recorded tests", || {
        results = serde_json::from_str(&daemon.get("/api/results").1).unwrap();
        results.len() == 3
    });
    let received: u64 = results
        .iter()
        .map(|r| r["bytes_received"].as_u64().unwrap())
        .sum();
    let sent: u64 = results
        .iter()
        .map(|r| r["bytes_sent"].as_u64().unwrap())
        .sum();

    let counted = poll_until(Duration::from_secs(30), || {
        prom.value("sum(webperf3_tests_total)") == Some(3.0)
    });
    assert!(
        counted,
        "Prometheus saw {:?} tests",
        prom.query("webperf3_tests_total")
    );
    let port = daemon.port;
    let one = |expr: &str| {
        prom.value(expr)
            .unwrap_or_else(|| panic!("no data: {expr}"))
    };
    assert_eq!(
        one(&format!(
            "webperf3_tests_total{{port=\"{port}\",protocol=\"tcp\",direction=\"receive\",outcome=\"ok\"}}"
        )),
        1.0
    );
    assert_eq!(
        one("webperf3_tests_total{protocol=\"tcp\",direction=\"send\"}"),
        1.0
    );
    assert_eq!(one("webperf3_tests_total{protocol=\"udp\"}"), 1.0);
    assert_eq!(
        one("sum(webperf3_test_throughput_bytes_per_second_count)"),
        3.0
    );
    assert_eq!(
        one("webperf3_test_throughput_bytes_per_second_count{protocol=\"udp\",direction=\"receive\"}"),
        1.0
    );
    assert_eq!(
        one("webperf3_transferred_bytes_total{direction=\"receive\"}"),
        received as f64
    );
    assert_eq!(
        one("webperf3_transferred_bytes_total{direction=\"send\"}"),
        sent as f64
    );
    // The UDP test ran at 8 Mbit/s (1 MB/s): its bucket is the 1.25 MB/s one
    // (`le` as the format Prometheus scraped wrote it: 1.25e+06 or 1250000.0).
    let buckets: BTreeMap<u64, f64> = prom
        .query("webperf3_test_throughput_bytes_per_second_bucket{protocol=\"udp\"}")
        .iter()
        .map(|s| {
            let le: f64 = s["metric"]["le"].as_str().unwrap().parse().unwrap();
            let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (if le.is_finite() { le as u64 } else { u64::MAX }, v)
        })
        .collect();
    assert_eq!(buckets.len(), 17, "{buckets:?}");
    assert_eq!(buckets[&625_000], 0.0, "{buckets:?}");
    assert_eq!(buckets[&1_250_000], 1.0, "{buckets:?}");
    assert_eq!(buckets[&u64::MAX], 1.0, "{buckets:?}");
    assert!(one("webperf3_last_test_lost_ratio") >= 0.0);
    assert_eq!(one("webperf3_cpu_temperature_celsius"), 56.0);
    assert_eq!(one("webperf3_throttled"), 1.0);
    assert_eq!(one("webperf3_forward_queue_tests"), 3.0);
    // No name a client chose became a label.
    assert!(prom.query("{name=~\".+\"}").is_empty());
    let series = prom.query("{__name__=~\"webperf3_.*\"}");
    assert!(series.len() > 20, "{series:?}");
    assert!(series
        .iter()
        .all(|s| !s["metric"].to_string().contains("alice")));

    // The alert on a throttled Pi fires from what the box reports.
    wait_until(Duration::from_secs(30), "the throttling alert", || {
        !prom
            .query("ALERTS{alertname=\"Webperf3PiThrottled\"}")
            .is_empty()
    });

    for (title, expr) in dashboard_queries()
        .into_iter()
        .filter(|(_, e)| !is_probe(e))
    {
        let result = prom.query(&expr);
        assert!(
            !result.is_empty(),
            "dashboard panel {title:?}: no data for {expr}"
        );
    }

    // Our exposition passes promtool with nothing to report.
    let (code, text) = daemon.get("/metrics");
    assert_eq!(code, 200);
    let lint = promtool_ok(tmp.path(), &["check", "metrics"], Some(&text));
    assert!(lint.trim().is_empty(), "promtool check metrics: {lint}");
}
