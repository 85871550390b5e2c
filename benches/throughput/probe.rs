//! The box as the client: a probe (`GET /probe` on our binary) against
//! the reference stock server, beside the stock client (`IPERF3_CLIENT`)
//! against the same server, taking turns within each round.
//!
//! Both clients are measured the same way: throughput and bytes from the
//! stock server's own log entry of the test (what it received, or for
//! `-R` what it sent), so neither client's way of counting enters the
//! ratio; CPU is the client process's own: the stock client's from
//! `getrusage(RUSAGE_CHILDREN)`, ours from `/proc/<pid>/stat` around the
//! request (the HTTP answer included, which is small beside the data).
//! UDP loss is the server's, as it received the datagrams.

use super::*;

/// One probe case: the query of `GET /probe` and the stock client's
/// flags for the same test.
pub(crate) struct ProbeCase {
    pub(crate) name: &'static str,
    query: &'static str,
    stock: &'static [&'static str],
}

/// Per stream, far above what loopback moves: the probe never paces
/// (stock's client runs TCP unpaced and UDP with `-b 0`).
const UNPACED: &str = "1T";

pub(crate) const PROBE_CASES: &[ProbeCase] = &[
    ProbeCase {
        name: "probe-tcp",
        query: "",
        stock: &[],
    },
    ProbeCase {
        name: "probe-tcp-reverse",
        query: "&reverse=1",
        stock: &["-R"],
    },
    ProbeCase {
        name: "probe-tcp-parallel-4",
        query: "&streams=4",
        stock: &["-P", "4"],
    },
    ProbeCase {
        name: "probe-udp",
        query: "&udp=1&length=1400",
        stock: &["-u", "-b", "0", "-l", "1400"],
    },
];

/// One client's run: the server's figures and the client's CPU.
struct Run {
    bps: f64,
    bytes: f64,
    client_cpu: f64,
    loss: Option<f64>,
}

/// A case's runs: ours (the probe) and the stock client's, by round.
pub(crate) struct ProbeRow {
    case: &'static ProbeCase,
    ours: Vec<Result<Run, String>>,
    stock: Vec<Result<Run, String>>,
}

/// Runs the probe cases `cases` against the reference stock server.
pub(crate) fn probe_cases(
    s: &Settings,
    cases: &[&'static ProbeCase],
    work: &Path,
) -> Result<Vec<ProbeRow>, String> {
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    let reference = &s.references[0];
    let mut server = Server::stock(reference, work, 0)?;
    let dir = work.join("prober");
    let prober = Launch::new(&dir)
        .args(["--probe-allow", "127.0.0.1", "--probe-max-duration", "60"])
        .args(["--probe-max-bitrate", "8T"])
        .try_start()?;
    let mut rows = Vec::new();
    for case in cases {
        let mut row = ProbeRow {
            case,
            ours: Vec::new(),
            stock: Vec::new(),
        };
        for round in 0..s.rounds {
            for turn in 0..2 {
                let ours_turn = (round + turn) % 2 == 0;
                let run = if ours_turn {
                    probe_once(s, case, &prober, &mut server)
                } else {
                    stock_once(s, case, &mut server)
                };
                eprintln!(
                    "  {:<22} round {} {:<12} {}",
                    case.name,
                    round + 1,
                    if ours_turn {
                        "ours probe"
                    } else {
                        "stock client"
                    },
                    match &run {
                        Ok(r) => format!(
                            "{:>7.2} Gbit/s  client cpu {:>5.2} s/GB",
                            r.bps / 1e9,
                            r.client_cpu / (r.bytes / 1e9)
                        ),
                        Err(e) => format!("FAILED: {e}"),
                    }
                );
                if ours_turn {
                    row.ours.push(run);
                } else {
                    row.stock.push(run);
                }
                std::thread::sleep(SETTLE);
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The run of a client that used `client_cpu`: the server's figures of
/// its newest test, once it has logged it.
fn server_figures(
    server: &Server,
    before: usize,
    case: &ProbeCase,
    client_cpu: f64,
) -> Result<Run, String> {
    if !poll_until(LOG_TIMEOUT, || server.entries() > before) {
        return Err("the server logged no test".into());
    }
    let entry = server.last_entry().ok_or("no server log entry")?;
    if let Some(e) = entry.get("error").and_then(Value::as_str) {
        return Err(format!("server: {e}"));
    }
    let udp = case.stock.contains(&"-u");
    let reverse = case.stock.contains(&"-R");
    // The server's own sums: what it received, or for -R what it sent.
    let sum = match (udp, reverse) {
        (true, _) => ["/end/sum_received", "/end/sum"].as_slice(),
        (false, true) => &["/end/sum_sent"],
        (false, false) => &["/end/sum_received"],
    };
    let field = |key: &str| {
        sum.iter()
            .find_map(|p| entry.pointer(&format!("{p}/{key}")).and_then(Value::as_f64))
    };
    let (Some(bps), Some(bytes)) = (field("bits_per_second"), field("bytes")) else {
        return Err(format!("no sums in the server's entry: {entry}"));
    };
    if bytes <= 0.0 {
        return Err("no bytes moved".into());
    }
    let loss = udp
        .then(|| {
            entry
                .pointer("/end/sum/lost_percent")
                .and_then(Value::as_f64)
        })
        .flatten();
    Ok(Run {
        bps,
        bytes,
        client_cpu,
        loss,
    })
}

fn probe_once(
    s: &Settings,
    case: &ProbeCase,
    prober: &Daemon,
    server: &mut Server,
) -> Result<Run, String> {
    let before = server.entries();
    let path = format!(
        "/probe?target=127.0.0.1:{}&duration={}&bitrate={UNPACED}{}",
        server.port, s.seconds, case.query
    );
    let cpu0 = cpu_seconds(prober.pid()).ok_or("cannot read the prober's CPU time")?;
    let reply = support::http::http_get(prober.http, &path).map_err(|e| format!("GET: {e}"))?;
    let client_cpu = cpu_seconds(prober.pid()).ok_or("cannot read the prober's CPU time")? - cpu0;
    let body = String::from_utf8_lossy(&reply.body);
    if reply.status != 200 || !body.lines().any(|l| l == "webperf3_probe_success 1.0") {
        let why = reply
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-webperf3-probe-error"))
            .map_or(body.trim().to_string(), |(_, v)| v.clone());
        return Err(format!("probe ({}): {why}", reply.status));
    }
    server_figures(server, before, case, client_cpu)
}

fn stock_once(s: &Settings, case: &ProbeCase, server: &mut Server) -> Result<Run, String> {
    let before = server.entries();
    let mut cmd = Command::new(&s.client);
    cmd.args(["-c", &LOOPBACK.to_string(), "-p", &server.port.to_string()])
        .args(["-t", &s.seconds.to_string(), "--connect-timeout", "5000"])
        .args(case.stock)
        .stdout(std::process::Stdio::null());
    let cpu0 = children_cpu();
    let finished = run_bounded(&mut cmd, Duration::from_secs(s.seconds) + CLIENT_SLACK)?;
    let client_cpu = children_cpu() - cpu0;
    if !finished.status.success() {
        return Err(String::from_utf8_lossy(&finished.stderr).trim().to_string());
    }
    server_figures(server, before, case, client_cpu)
}

/// Medians of one client's runs: bits/s, client CPU s/GB, loss; and
/// how many failed with the first reason.
fn medians(runs: &[Result<Run, String>]) -> (Option<f64>, Option<f64>, Option<f64>, Vec<String>) {
    let ok: Vec<&Run> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failed = runs
        .iter()
        .filter_map(|r| r.as_ref().err().cloned())
        .collect();
    (
        median(ok.iter().map(|r| r.bps).collect()),
        median(ok.iter().map(|r| r.client_cpu / (r.bytes / 1e9)).collect()),
        median(ok.iter().filter_map(|r| r.loss).collect()),
        failed,
    )
}

impl ProbeRow {
    /// Throughput ratio (of the medians), the median of the per-round
    /// ratios, and the client CPU per GB ratio, ours over stock's.
    fn ratios(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let (ours_bps, ours_cpu, ..) = medians(&self.ours);
        let (stock_bps, stock_cpu, ..) = medians(&self.stock);
        let paired = self
            .ours
            .iter()
            .zip(&self.stock)
            .filter_map(|(a, b)| Some(a.as_ref().ok()?.bps / b.as_ref().ok()?.bps))
            .collect();
        (
            ours_bps.zip(stock_bps).map(|(a, b)| a / b),
            median(paired),
            ours_cpu.zip(stock_cpu).map(|(a, b)| a / b),
        )
    }

    pub(crate) fn to_json(&self) -> Value {
        let side = |runs: &[Result<Run, String>]| {
            let (bps, cpu, loss, failed) = medians(runs);
            json!({
                "median_bps": bps,
                "runs_bps": runs.iter().map(|r| r.as_ref().ok().map(|r| r.bps)).collect::<Vec<_>>(),
                "median_client_cpu_seconds_per_gb": cpu,
                "server_loss_percent": loss,
                "failed": failed,
            })
        };
        let (ratio, paired, cpu) = self.ratios();
        json!({
            "case": self.case.name,
            "probe_query": self.case.query,
            "stock_client_args": self.case.stock,
            "ours_probe": side(&self.ours),
            "stock_client": side(&self.stock),
            "throughput_ratio": ratio,
            "paired_throughput_ratio": paired,
            "client_cpu_per_gb_ratio": cpu,
        })
    }
}

pub(crate) fn print_probe_table(rows: &[ProbeRow]) {
    println!(
        "{:<22} {:<13} {:>8} {:>10} {:>8} | {:>7} {:>7} {:>7}",
        "case", "client", "Gbit/s", "client s/GB", "loss", "ratio", "paired", "CPU"
    );
    let show = |v: Option<f64>, scale: f64, digits: usize| {
        v.map_or("-".into(), |v| format!("{:.*}", digits, v / scale))
    };
    let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}x"));
    for row in rows {
        let (r, p, c) = row.ratios();
        for (i, (label, runs)) in [("ours probe", &row.ours), ("stock client", &row.stock)]
            .into_iter()
            .enumerate()
        {
            let (bps, cpu, loss, failed) = medians(runs);
            println!(
                "{:<22} {:<13} {:>8} {:>10} {:>8} | {:>7} {:>7} {:>7}",
                if i == 0 { row.case.name } else { "" },
                label,
                show(bps, 1e9, 2),
                show(cpu, 1.0, 3),
                loss.map_or("-".into(), |l| format!("{l:.2}%")),
                if i == 0 { ratio(r) } else { String::new() },
                if i == 0 { ratio(p) } else { String::new() },
                if i == 0 { ratio(c) } else { String::new() },
            );
            if let Some(e) = failed.first() {
                println!(
                    "note: {}: {} run(s) failed on {label}: {e}",
                    row.case.name,
                    failed.len()
                );
            }
        }
    }
    println!(
        "Both clients against the reference stock server, figures from its log. ratio: \
         throughput ours over stock's (medians); paired: median of the per-round ratios; \
         CPU: client CPU s/GB ours over stock's."
    );
}
