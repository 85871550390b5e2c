//! End-to-end throughput: our server (copy-free by default, and with
//! `--copy`) beside one or more stock `iperf3 -s`, driven by the same stock
//! client over loopback.
//!
//! All servers run as child processes on 127.0.0.1 and stay up for the
//! whole run: ours on ports they pick themselves (`--port 0`), each stock
//! server on one picked ahead with a retry when it turns out taken (stock
//! has no port-0 mode); see `tests/support`, shared with the integration
//! tests. For each case the bench takes the servers in turn over several
//! rounds (each round starting with the next server, so drift on a shared
//! machine hits all alike) and prints, per server, the median bits/s, the
//! server's CPU seconds per GB moved (utime + stime from `/proc/<pid>/stat`,
//! before and after each test; median over the rounds), the same with the
//! client's CPU added, for UDP the receiver's loss (median), and the ratios
//! of throughput (of the medians, and the median of the per-round ratios)
//! and of CPU per GB to the first stock server's (the reference). Then
//! `udp-ceiling` raises the offered UDP rate step by step against ours and
//! the reference and reports, for each, the highest rate up to which loss
//! stayed under 1 %.
//!
//! Why both CPU figures: on loopback much of the kernel's TCP work for one
//! side runs in whichever process happens to process the other side's
//! packets (an ACK arriving at the receiver can transmit the sender's queued
//! data), so the server's own share moves from run to run; server + client
//! is the whole cost and is steadier. A case our server refuses ("protocol
//! does not exist") is reported as unsupported by ours, never skipped.
//!
//! Our server is the binary cargo builds for this bench (`CARGO_BIN_EXE_…`,
//! release settings) rather than an in-process `app::serve`: that way all
//! servers are measured the same way (a process's own CPU time, excluding the
//! client and this harness), the binary is exactly what users run, and a hung
//! server is killed without taking the bench down.
//!
//! Environment: `WEBPERF3_BENCH_ROUNDS` (default 5), `WEBPERF3_BENCH_SECONDS`
//! (per test, default 3), `IPERF3_REFERENCE` (the stock server binaries,
//! separated by `:`, the first being the reference of the ratios; default
//! the `iperf3` on PATH), `IPERF3_CLIENT` (the client binary; default the
//! `iperf3` on PATH; the `-light` cases need one with `--skip-rx-copy`, 3.16
//! or later). Names given after `--` pick cases (`cargo bench --bench
//! throughput -- tcp udp`). Figures go to
//! `target/bench/throughput-<unix time>.json` and
//! `target/bench/throughput-latest.json`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[path = "../tests/support/mod.rs"]
mod support;

use support::daemon::{Daemon, Launch};
use support::iperf3::StockServer;
use support::process::run_bounded;
use support::wait::poll_until;

/// The only address anything here binds or connects to.
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How long a client may run beyond its test duration.
const CLIENT_SLACK: Duration = Duration::from_secs(20);
/// How long a server may take to append a finished test to its log.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between tests, so one test's teardown does not overlap the next.
const SETTLE: Duration = Duration::from_millis(300);
/// What our server answers a protocol it does not implement.
const UNSUPPORTED: &str = "protocol does not exist";

/// One client command line, run against every server.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "tcp",
        args: &[],
    },
    Case {
        name: "tcp-reverse",
        args: &["-R"],
    },
    Case {
        name: "tcp-parallel-4",
        args: &["-P", "4"],
    },
    Case {
        name: "tcp-bidir",
        args: &["--bidir"],
    },
    Case {
        name: "udp",
        args: &["-u", "-b", "0", "-l", "1400"],
    },
    Case {
        name: "udp-reverse",
        args: &["-u", "-R", "-b", "1G"],
    },
    Case {
        name: "udp-reverse-max",
        args: &["-u", "-R", "-b", "0"],
    },
    // Datagrams of an Ethernet MTU, so many go out per call (GSO).
    Case {
        name: "udp-reverse-max-1400",
        args: &["-u", "-R", "-b", "0", "-l", "1400"],
    },
    // The client light (`-Z`, `--skip-rx-copy`), so the server is the
    // bottleneck. Stock 3.21 servers honour both flags too.
    Case {
        name: "tcp-light",
        args: &["-Z", "--skip-rx-copy"],
    },
    Case {
        name: "tcp-reverse-light",
        args: &["-R", "-Z", "--skip-rx-copy"],
    },
    Case {
        name: "tcp-parallel-4-light",
        args: &["-P", "4", "-Z", "--skip-rx-copy"],
    },
    Case {
        name: "tcp-bidir-light",
        args: &["--bidir", "-Z", "--skip-rx-copy"],
    },
    Case {
        name: "udp-reverse-max-light",
        args: &["-u", "-R", "-b", "0", "--skip-rx-copy"],
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("throughput bench: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

struct Settings {
    rounds: usize,
    seconds: u64,
    client: PathBuf,
    /// Stock servers; the first is the reference of the ratios.
    references: Vec<PathBuf>,
    cases: Vec<&'static Case>,
    /// Whether to run the UDP ceiling search (`udp-ceiling`).
    ceiling: bool,
}

fn env_number(
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!(
                "{name}={text:?}: expected a whole number in {}..={}",
                range.start(),
                range.end()
            )),
        },
    }
}

fn settings() -> Result<Settings, String> {
    let rounds = env_number("WEBPERF3_BENCH_ROUNDS", 5, 1..=100)?;
    let seconds = env_number("WEBPERF3_BENCH_SECONDS", 3, 1..=60)?;
    // Each variable is a `:`-separated list of binaries; unset or empty,
    // the `iperf3` on PATH.
    let given = |name: &str| -> Result<Vec<PathBuf>, String> {
        let Some(list) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
            return Ok(vec![support::iperf3::find()?]);
        };
        std::env::split_paths(&list)
            .map(|p| {
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!("{name}: {} is not a file", p.display()))
                }
            })
            .collect()
    };
    let client = given("IPERF3_CLIENT")?.remove(0);
    let references = given("IPERF3_REFERENCE")?;
    // `cargo bench` passes `--bench`; other words name cases.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for w in &wanted {
        if !CASES.iter().any(|c| c.name == w) && w != CEILING {
            let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
            names.push(CEILING);
            return Err(format!("unknown case {w:?}; cases: {}", names.join(", ")));
        }
    }
    let cases = CASES
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| w == c.name))
        .collect();
    let ceiling = wanted.is_empty() || wanted.iter().any(|w| w == CEILING);
    Ok(Settings {
        rounds: usize::try_from(rounds).unwrap_or(5),
        seconds,
        client,
        references,
        cases,
        ceiling,
    })
}

fn run() -> Result<(), String> {
    let s = settings()?;
    let ours_exe = PathBuf::from(support::daemon::BIN);
    let machine = machine(&s);
    println!("== webperf3 throughput bench (loopback {LOOPBACK})");
    for (k, v) in &machine {
        println!("{k:>16}: {v}");
    }
    println!(
        "{:>16}: {} rounds x {} s per case and server, servers in turn",
        "settings", s.rounds, s.seconds
    );
    println!();

    let work = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut servers = vec![
        Server::ours(work.path(), false)?,
        Server::ours(work.path(), true)?,
    ];
    for (i, exe) in s.references.iter().enumerate() {
        servers.push(Server::stock(exe, work.path(), i)?);
    }
    let labels: Vec<String> = servers.iter().map(|x| x.label.clone()).collect();

    let mut rows = Vec::new();
    for case in &s.cases {
        let mut runs: Vec<Vec<Outcome>> = servers.iter().map(|_| Vec::new()).collect();
        for round in 0..s.rounds {
            for k in 0..servers.len() {
                let i = (round + k) % servers.len();
                let server = &mut servers[i];
                let r = run_one(&s, case.args, server)?;
                eprintln!(
                    "  {:<22} round {} {:<12} {}",
                    case.name,
                    round + 1,
                    server.label,
                    r.brief()
                );
                runs[i].push(r);
                std::thread::sleep(SETTLE);
            }
        }
        rows.push(Row::new(case, &labels, &runs));
    }
    let ceiling = if s.ceiling {
        let (ours, rest) = servers.split_at_mut(REFERENCE);
        Some(udp_ceiling(&s, &mut ours[0], &mut rest[0])?)
    } else {
        None
    };
    drop(servers);

    if !rows.is_empty() {
        println!();
        print_table(&rows);
    }
    if let Some(c) = &ceiling {
        println!();
        c.print();
    }
    let load_at_end = load_average();
    println!("load average at the end: {load_at_end}");
    let doc = json!({
        "unix_time": unix_time(),
        "load_at_end": load_at_end,
        "machine": machine.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "rounds": s.rounds,
        "seconds": s.seconds,
        "client": s.client.display().to_string(),
        "references": s.references.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "cases": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "udp_ceiling": ceiling.as_ref().map(Ceiling::to_json),
    });
    let written = write_figures(&ours_exe, &doc)?;
    println!();
    println!("figures written to {}", written.display());
    Ok(())
}

/// The machine the figures come from.
fn machine(s: &Settings) -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("nproc", nproc.to_string()),
        ("cpu", model),
        ("kernel", kernel),
        ("load at start", load_average()),
        ("client", version_of(&s.client)),
        (
            "stock servers",
            s.references
                .iter()
                .map(|p| version_of(p))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("ours", format!("webperf3 {}", env!("CARGO_PKG_VERSION"))),
    ]
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn version_of(exe: &Path) -> String {
    let out = run_bounded(Command::new(exe).arg("--version"), Duration::from_secs(5));
    let out = out.map_or(String::new(), |o| {
        String::from_utf8_lossy(&o.stdout).into_owned()
    });
    let first = out.lines().next().unwrap_or("").trim().to_string();
    format!("{first} ({})", exe.display())
}

// ---------------------------------------------------------------- processes

/// CPU seconds (user + system) of this process's finished and waited-for
/// children: the difference around one client run is that client's CPU.
fn children_cpu() -> f64 {
    // SAFETY: rusage is plain old data filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<_> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime and stime are fields 14 and 15.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// A running server under test.
struct Server {
    /// `ours`, `ours --copy`, or `stock <version>`.
    label: String,
    port: u16,
    log: PathBuf,
    process: Process,
}

/// Which server, as its process.
enum Process {
    Ours(Daemon),
    Stock(StockServer),
}

impl Server {
    /// The binary cargo built for this bench ([`support::daemon::BIN`]),
    /// copy-free or (`copy`) with `--copy`.
    fn ours(work: &Path, copy: bool) -> Result<Server, String> {
        let (label, dir) = if copy {
            ("ours --copy", work.join("ours-copy"))
        } else {
            ("ours", work.join("ours"))
        };
        let mut launch = Launch::new(&dir);
        if copy {
            launch = launch.arg("--copy");
        }
        let daemon = launch.try_start()?;
        Ok(Server {
            label: label.into(),
            port: daemon.port,
            log: daemon.log_path(0),
            process: Process::Ours(daemon),
        })
    }

    /// The `i`-th stock server, labelled with its version.
    fn stock(exe: &Path, work: &Path, i: usize) -> Result<Server, String> {
        let stock = StockServer::try_start(exe, work)?;
        // `iperf 3.21 (cJSON …)` → `stock 3.21`.
        let version = version_of(exe);
        let label = match version.split_whitespace().nth(1) {
            Some(v) if version.starts_with("iperf ") => format!("stock {v}"),
            _ => format!("stock #{}", i + 1),
        };
        Ok(Server {
            label,
            port: stock.port,
            log: stock.log.clone(),
            process: Process::Stock(stock),
        })
    }

    fn pid(&self) -> u32 {
        match &self.process {
            Process::Ours(d) => d.pid(),
            Process::Stock(s) => s.pid(),
        }
    }

    fn alive(&mut self) -> bool {
        match &mut self.process {
            Process::Ours(d) => d.alive(),
            Process::Stock(s) => s.alive(),
        }
    }

    fn stderr(&self) -> String {
        match &self.process {
            Process::Ours(d) => d.stderr_text(),
            Process::Stock(s) => s.stderr_text(),
        }
    }

    /// Log entries written so far (each pretty-printed object ends with a
    /// `}` alone on its line).
    fn entries(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |t| t.lines().filter(|l| *l == "}").count())
    }

    /// The newest log entry.
    fn last_entry(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .last()
    }
}

// ---------------------------------------------------------------- one test

/// What one test against one server gave.
enum Outcome {
    Done {
        bps: f64,
        /// Bytes the server itself sent or received.
        bytes: f64,
        /// CPU seconds the server used for the test.
        cpu: f64,
        /// CPU seconds the client used.
        client_cpu: f64,
        /// UDP: the receiver's loss, percent.
        loss: Option<f64>,
    },
    Unsupported(String),
    Failed(String),
}

impl Outcome {
    fn brief(&self) -> String {
        match self {
            Outcome::Done {
                bps,
                bytes,
                cpu,
                loss,
                ..
            } => {
                let mut s = format!(
                    "{:>7.2} Gbit/s  cpu {:>5.2} s/GB",
                    bps / 1e9,
                    cpu / (bytes / 1e9)
                );
                if let Some(l) = loss {
                    s.push_str(&format!("  loss {l:.2}%"));
                }
                s
            }
            Outcome::Unsupported(e) => format!("unsupported: {e}"),
            Outcome::Failed(e) => format!("FAILED: {e}"),
        }
    }
}

fn run_one(s: &Settings, args: &[&str], server: &mut Server) -> Result<Outcome, String> {
    if !server.alive() {
        return Err(format!(
            "the {} server died: {}",
            server.label,
            server.stderr()
        ));
    }
    let before_entries = server.entries();
    let cpu0 = cpu_seconds(server.pid()).ok_or("cannot read the server's CPU time")?;
    let mut cmd = Command::new(&s.client);
    cmd.args(["-c", &LOOPBACK.to_string(), "-p", &server.port.to_string()])
        .args([
            "-t",
            &s.seconds.to_string(),
            "-J",
            "--connect-timeout",
            "5000",
        ])
        .args(args);
    let limit = Duration::from_secs(s.seconds) + CLIENT_SLACK;
    let client_cpu0 = children_cpu();
    let finished = run_bounded(&mut cmd, limit);
    let client_cpu = children_cpu() - client_cpu0;
    // Wait for the server's log entry, so its CPU time covers the whole test.
    poll_until(LOG_TIMEOUT, || server.entries() > before_entries);
    let cpu = cpu_seconds(server.pid()).ok_or("cannot read the server's CPU time")? - cpu0;
    let finished = match finished {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Failed(e)),
    };
    let stdout = String::from_utf8_lossy(&finished.stdout);
    let doc: Option<Value> = serde_json::from_str(&stdout).ok();
    let error = doc
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let failed = !finished.status.success();
    let stderr = || String::from_utf8_lossy(&finished.stderr).trim().to_string();
    if let Some(e) = error.or_else(|| failed.then(stderr)) {
        if e.contains(UNSUPPORTED) {
            return Ok(Outcome::Unsupported(e));
        }
        return Ok(Outcome::Failed(e));
    }
    let Some(end) = doc.as_ref().and_then(|d| d.get("end")) else {
        return Ok(Outcome::Failed("client printed no results".into()));
    };
    let num = |sum: &str, key: &str| {
        end.get(sum)
            .and_then(|v| v.get(key))
            .and_then(Value::as_f64)
    };
    let reverse = args.contains(&"-R");
    let bidir = args.contains(&"--bidir");
    let udp = args.contains(&"-u");
    // What arrived at the receiver(s), and what the server handled itself:
    // it received the forward direction and sent the reverse one.
    let (bps, bytes) = if bidir {
        (
            num("sum_received", "bits_per_second").unwrap_or(0.0)
                + num("sum_received_bidir_reverse", "bits_per_second").unwrap_or(0.0),
            num("sum_received", "bytes").unwrap_or(0.0)
                + num("sum_sent_bidir_reverse", "bytes").unwrap_or(0.0),
        )
    } else {
        (
            num("sum_received", "bits_per_second").unwrap_or(0.0),
            num(if reverse { "sum_sent" } else { "sum_received" }, "bytes").unwrap_or(0.0),
        )
    };
    if bps <= 0.0 || bytes <= 0.0 {
        return Ok(Outcome::Failed("no bytes moved".into()));
    }
    // UDP loss as the receiver saw it: the server's own log entry for a
    // forward test, the client's figures for -R.
    let loss = if !udp {
        None
    } else if reverse {
        num("sum_received", "lost_percent")
    } else {
        server
            .last_entry()
            .and_then(|e| e.pointer("/end/sum/lost_percent").and_then(Value::as_f64))
    };
    Ok(Outcome::Done {
        bps,
        bytes,
        cpu,
        client_cpu,
        loss,
    })
}

// ---------------------------------------------------------------- UDP ceiling

/// The name that picks the UDP ceiling search.
const CEILING: &str = "udp-ceiling";
/// Offered rates of the ceiling search, in Mbit/s, lowest first; 0 is
/// `-b 0` (as fast as the client can send).
const CEILING_STEPS_MBPS: &[u64] = &[250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 6000, 0];
/// Loss (percent, at the receiver) under which a rate counts as carried.
const CEILING_LOSS_PERCENT: f64 = 1.0;
/// Most runs per step and server (the median is taken).
const CEILING_RUNS: usize = 3;

/// One server's median figures at one offered rate.
#[derive(Clone, Copy)]
struct Step {
    bps: f64,
    loss: f64,
}

/// Whether a server's figures at a rate show it carried: loss under the limit.
fn carried(x: Option<Step>) -> bool {
    x.is_some_and(|x| x.loss < CEILING_LOSS_PERCENT)
}

/// Index of each server in [`Rung::servers`].
const OURS: usize = 0;
const STOCK: usize = 1;

/// One offered rate and what each server made of it.
struct Rung {
    /// Mbit/s; 0 = unlimited.
    mbps: u64,
    /// Ours, then stock.
    servers: [Option<Step>; 2],
}

/// What the ceiling search found, lowest rate first.
struct Ceiling {
    /// The stock server's label (the reference's, e.g. `stock 3.21`).
    stock: String,
    rungs: Vec<Rung>,
}

/// The `-b` argument for `mbps` (0 = unlimited).
fn rate_arg(mbps: u64) -> String {
    if mbps == 0 {
        "0".to_string()
    } else {
        format!("{mbps}M")
    }
}

/// Raises the offered UDP rate (`-u -l 1400 -b R`) step by step against both
/// servers, alternating which goes first, and finds for each server the
/// highest received rate up to which loss stayed under
/// [`CEILING_LOSS_PERCENT`]. Stops once both have reached theirs.
fn udp_ceiling(s: &Settings, ours: &mut Server, stock: &mut Server) -> Result<Ceiling, String> {
    let runs = s.rounds.clamp(1, CEILING_RUNS);
    let mut ceiling = Ceiling {
        stock: stock.label.clone(),
        rungs: Vec::new(),
    };
    let mut skip_to_unlimited = false;
    for (i, &mbps) in CEILING_STEPS_MBPS.iter().enumerate() {
        if skip_to_unlimited && mbps != 0 {
            continue;
        }
        let rate = rate_arg(mbps);
        let args = ["-u", "-l", "1400", "-b", rate.as_str()];
        let mut figures: [Vec<Step>; 2] = [Vec::new(), Vec::new()];
        for run in 0..runs {
            let order = if (i + run) % 2 == 0 {
                [OURS, STOCK]
            } else {
                [STOCK, OURS]
            };
            for who in order {
                let server = if who == OURS { &mut *ours } else { &mut *stock };
                let r = run_one(s, &args, server)?;
                eprintln!(
                    "  {CEILING:<22} -b {rate:<6} {:<12} {}",
                    server.label,
                    r.brief()
                );
                if let Outcome::Done {
                    bps,
                    loss: Some(loss),
                    ..
                } = r
                {
                    figures[who].push(Step { bps, loss });
                }
                std::thread::sleep(SETTLE);
            }
        }
        let servers = figures.map(|v| {
            Some(Step {
                bps: median(v.iter().map(|s| s.bps).collect())?,
                loss: median(v.iter().map(|s| s.loss).collect())?,
            })
        });
        ceiling.rungs.push(Rung { mbps, servers });
        if ceiling.reached(OURS) && ceiling.reached(STOCK) {
            break;
        }
        // Past what the client can send, higher fixed rates add nothing:
        // go straight to `-b 0`.
        let short = |x: &Option<Step>| x.is_none_or(|x| x.bps < 0.8 * mbps as f64 * 1e6);
        skip_to_unlimited = mbps != 0 && servers.iter().all(short);
    }
    Ok(ceiling)
}

impl Ceiling {
    /// Whether server `who` has lost 1 % or more at some rate already.
    fn reached(&self, who: usize) -> bool {
        self.rungs.iter().any(|r| !carried(r.servers[who]))
    }

    /// The highest received rate (bits/s) up to which server `who`'s loss
    /// stayed under the limit: the rungs before its first one at or over it.
    fn best(&self, who: usize) -> f64 {
        self.rungs
            .iter()
            .map_while(|r| Some(r.servers[who]).filter(|&x| carried(x)).flatten())
            .map(|x| x.bps)
            .fold(0.0, f64::max)
    }

    fn print(&self) {
        println!(
            "{CEILING}: UDP -l 1400 at rising -b, received Gbit/s and loss (median of up to {CEILING_RUNS} runs)"
        );
        println!("{:>8} {:>17} {:>17}", "-b", "ours", self.stock);
        let cell = |x: &Option<Step>| {
            x.map_or("-".into(), |x| {
                format!("{:.2} {:>6.2}%", x.bps / 1e9, x.loss)
            })
        };
        for r in &self.rungs {
            let [a, b] = &r.servers;
            println!("{:>8} {:>17} {:>17}", rate_arg(r.mbps), cell(a), cell(b));
        }
        let (a, b) = (self.best(OURS), self.best(STOCK));
        println!(
            "highest rate up to which loss stayed under {CEILING_LOSS_PERCENT}%: ours {:.2} Gbit/s, {} {:.2} Gbit/s, ratio {}",
            a / 1e9,
            self.stock,
            b / 1e9,
            if b > 0.0 {
                format!("{:.2}x", a / b)
            } else {
                "-".into()
            }
        );
        if !self.reached(OURS) && self.rungs.last().is_some_and(|r| r.mbps == 0) {
            println!(
                "note: ours still lost under {CEILING_LOSS_PERCENT}% at the client's top rate; its ceiling is the client's"
            );
        }
    }

    fn to_json(&self) -> Value {
        let step = |x: &Option<Step>| {
            x.map(|x| json!({"median_bps": x.bps, "median_loss_percent": x.loss}))
        };
        json!({
            "client_args": ["-u", "-l", "1400", "-b", "<rate>"],
            "loss_limit_percent": CEILING_LOSS_PERCENT,
            "stock_server": self.stock,
            "steps": self.rungs.iter().map(|r| json!({
                "offered_mbps": r.mbps,
                "ours": step(&r.servers[OURS]),
                "stock": step(&r.servers[STOCK]),
            })).collect::<Vec<_>>(),
            "ours_bps": self.best(OURS),
            "stock_bps": self.best(STOCK),
        })
    }
}

// ---------------------------------------------------------------- figures

/// One server's figures for one case.
enum Summary {
    Ok {
        median_bps: f64,
        runs_bps: Vec<f64>,
        /// Median over the runs: where the kernel charges loopback work
        /// (the process, or ksoftirqd) varies from run to run, so a median
        /// is steadier than a total.
        cpu_s_per_gb: f64,
        runs_cpu_s_per_gb: Vec<f64>,
        /// Median over the runs of server + client CPU seconds per GB.
        pair_cpu_s_per_gb: f64,
        loss_percent: Option<f64>,
        failed_runs: usize,
    },
    Unsupported(String),
    Failed(String),
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median over rounds of a/b within the same round: the runs of a
/// round are back to back, so they share the machine's load of the
/// moment, which the ratio of the two overall medians does not.
fn paired_ratio(a: &[Outcome], b: &[Outcome]) -> Option<f64> {
    let bps = |o: &Outcome| match o {
        Outcome::Done { bps, .. } => Some(*bps),
        _ => None,
    };
    let ratios = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| Some(bps(a)? / bps(b)?))
        .collect();
    median(ratios)
}

fn summarise(runs: &[Outcome]) -> Summary {
    let mut bps = Vec::new();
    let mut cpu_per_gb = Vec::new();
    let mut pair_per_gb = Vec::new();
    let mut losses = Vec::new();
    let mut failed = Vec::new();
    for r in runs {
        match r {
            Outcome::Done {
                bps: b,
                bytes: n,
                cpu: c,
                client_cpu,
                loss,
            } => {
                bps.push(*b);
                cpu_per_gb.push(c / (n / 1e9));
                pair_per_gb.push((c + client_cpu) / (n / 1e9));
                losses.extend(*loss);
            }
            Outcome::Unsupported(e) => return Summary::Unsupported(e.clone()),
            Outcome::Failed(e) => failed.push(e.clone()),
        }
    }
    match median(bps.clone()) {
        Some(median_bps) => Summary::Ok {
            median_bps,
            runs_bps: bps,
            cpu_s_per_gb: median(cpu_per_gb.clone()).unwrap_or(f64::NAN),
            runs_cpu_s_per_gb: cpu_per_gb,
            pair_cpu_s_per_gb: median(pair_per_gb).unwrap_or(f64::NAN),
            loss_percent: median(losses),
            failed_runs: failed.len(),
        },
        None => Summary::Failed(failed.first().cloned().unwrap_or_else(|| "no runs".into())),
    }
}

impl Summary {
    fn to_json(&self) -> Value {
        match self {
            Summary::Ok {
                median_bps,
                runs_bps,
                cpu_s_per_gb,
                runs_cpu_s_per_gb,
                pair_cpu_s_per_gb,
                loss_percent,
                failed_runs,
            } => json!({
                "status": "ok",
                "median_bps": median_bps,
                "runs_bps": runs_bps,
                "median_cpu_seconds_per_gb": cpu_s_per_gb,
                "runs_cpu_seconds_per_gb": runs_cpu_s_per_gb,
                "median_server_and_client_cpu_seconds_per_gb": pair_cpu_s_per_gb,
                "receiver_loss_percent": loss_percent,
                "failed_runs": failed_runs,
            }),
            Summary::Unsupported(e) => json!({"status": "unsupported by ours", "error": e}),
            Summary::Failed(e) => json!({"status": "failed", "error": e}),
        }
    }

    fn median_bps(&self) -> Option<f64> {
        match self {
            Summary::Ok { median_bps, .. } => Some(*median_bps),
            _ => None,
        }
    }
}

/// Index of the reference (the first stock server) among the servers:
/// after ours and ours with `--copy`.
const REFERENCE: usize = 2;

/// One server's figures in one case.
struct Cell {
    label: String,
    summary: Summary,
    /// Median of the per-round throughput ratios to the reference.
    paired: Option<f64>,
}

struct Row {
    case: &'static Case,
    cells: Vec<Cell>,
}

impl Row {
    fn new(case: &'static Case, labels: &[String], runs: &[Vec<Outcome>]) -> Row {
        let cells = labels
            .iter()
            .zip(runs)
            .map(|(label, r)| Cell {
                label: label.clone(),
                summary: summarise(r),
                paired: runs
                    .get(REFERENCE)
                    .and_then(|reference| paired_ratio(r, reference)),
            })
            .collect();
        Row { case, cells }
    }

    fn cpu_per_gb(&self, i: usize) -> Option<f64> {
        match self.cells.get(i).map(|c| &c.summary) {
            Some(Summary::Ok { cpu_s_per_gb, .. }) => Some(*cpu_s_per_gb),
            _ => None,
        }
    }

    /// Throughput of server `i` over the reference's (medians).
    fn ratio(&self, i: usize) -> Option<f64> {
        Some(
            self.cells[i].summary.median_bps()?
                / self.cells.get(REFERENCE)?.summary.median_bps()?,
        )
    }

    /// CPU per GB of server `i` over the reference's.
    fn cpu_ratio(&self, i: usize) -> Option<f64> {
        Some(self.cpu_per_gb(i)? / self.cpu_per_gb(REFERENCE)?)
    }

    fn to_json(&self) -> Value {
        let servers: Vec<Value> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "server": c.label,
                    "figures": c.summary.to_json(),
                    "ratio_to_reference": self.ratio(i),
                    "paired_ratio_to_reference": c.paired,
                    "cpu_per_gb_ratio_to_reference": self.cpu_ratio(i),
                })
            })
            .collect();
        json!({
            "case": self.case.name,
            "client_args": self.case.args,
            "servers": servers,
        })
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<22} {:<12} {:>8} {:>9} {:>9} {:>8} | {:>7} {:>7} {:>7}",
        "case", "server", "Gbit/s", "CPU s/GB", "+client", "loss", "ratio", "paired", "CPU"
    );
    for row in rows {
        for (i, c) in row.cells.iter().enumerate() {
            let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}x"));
            let (bps, cpu, pair, loss) = match &c.summary {
                Summary::Ok {
                    median_bps,
                    cpu_s_per_gb,
                    pair_cpu_s_per_gb,
                    loss_percent,
                    ..
                } => (
                    format!("{:.2}", median_bps / 1e9),
                    format!("{cpu_s_per_gb:.3}"),
                    format!("{pair_cpu_s_per_gb:.3}"),
                    loss_percent.map_or("-".into(), |l| format!("{l:.2}%")),
                ),
                Summary::Unsupported(_) => ("unsupp.".into(), "-".into(), "-".into(), "-".into()),
                Summary::Failed(_) => ("FAILED".into(), "-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:<22} {:<12} {:>8} {:>9} {:>9} {:>8} | {:>7} {:>7} {:>7}",
                if i == 0 { row.case.name } else { "" },
                c.label,
                bps,
                cpu,
                pair,
                loss,
                ratio(row.ratio(i)),
                ratio(c.paired),
                ratio(row.cpu_ratio(i)),
            );
        }
    }
    println!(
        "ratio: throughput over the reference's (medians); paired: median of the per-round \
         ratios; CPU: server CPU s/GB over the reference's. Reference: the first stock server."
    );
    for row in rows {
        for c in &row.cells {
            match &c.summary {
                Summary::Unsupported(e) => {
                    println!("note: {}: unsupported by {}: {e}", row.case.name, c.label)
                }
                Summary::Failed(e) => {
                    println!("note: {}: FAILED on {}: {e}", row.case.name, c.label)
                }
                Summary::Ok { failed_runs, .. } if *failed_runs > 0 => println!(
                    "note: {}: {failed_runs} run(s) failed on {}",
                    row.case.name, c.label
                ),
                Summary::Ok { .. } => {}
            }
        }
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the figures under `<target>/bench/`, next to the binary cargo built.
fn write_figures(ours_exe: &Path, doc: &Value) -> Result<PathBuf, String> {
    // The binary is <target>/<profile>/webperf3.
    let target = ours_exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
    let stamped = dir.join(format!("throughput-{}.json", unix_time()));
    for path in [&stamped, &dir.join("throughput-latest.json")] {
        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(stamped)
}
