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
//! stayed under 1 %. Then the `probe-…` cases put the box in the
//! client's place: a probe (`GET /probe`) against the reference stock
//! server beside the stock client against the same server (`probe.rs`).
//! `ndt7-download` (only when named) compares ours' CPU per GB for an
//! ndt7 download (`ndt7-client`) with `-R`'s, in turn.
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

#[path = "../../tests/support/mod.rs"]
mod support;

mod ceiling;
mod ndt7;
mod probe;
mod server;
mod summary;

use ceiling::*;
use ndt7::*;
use probe::*;
use server::*;
use summary::*;

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
    // The client's receive without copying (3.16 or later), as a client
    // that only counts bytes would; our send method is still ours.
    Case {
        name: "tcp-reverse-skip-rx",
        args: &["-R", "--skip-rx-copy"],
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
    /// The cases of the box as the client (`probe-…`).
    probe_cases: Vec<&'static ProbeCase>,
    /// Whether to run the UDP ceiling search (`udp-ceiling`).
    ceiling: bool,
    /// Whether to compare ndt7's download with `-R` (`ndt7-download`,
    /// only when named: it needs `ndt7-client`).
    ndt7: bool,
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
        let known = CASES.iter().any(|c| c.name == w) || PROBE_CASES.iter().any(|c| c.name == w);
        if !known && w != CEILING && w != NDT7 {
            let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
            names.extend(PROBE_CASES.iter().map(|c| c.name));
            names.extend([CEILING, NDT7]);
            return Err(format!("unknown case {w:?}; cases: {}", names.join(", ")));
        }
    }
    let cases = CASES
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| w == c.name))
        .collect();
    let probe_cases = PROBE_CASES
        .iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| w == c.name))
        .collect();
    let ceiling = wanted.is_empty() || wanted.iter().any(|w| w == CEILING);
    let ndt7 = wanted.iter().any(|w| w == NDT7);
    Ok(Settings {
        rounds: usize::try_from(rounds).unwrap_or(5),
        seconds,
        client,
        references,
        cases,
        probe_cases,
        ceiling,
        ndt7,
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
    // The send method ours calibrated at start-up (before any test runs).
    if let Process::Ours(daemon) = &servers[0].process {
        let chosen = daemon.wait_stderr("send method: calibrated");
        for line in daemon
            .stderr()
            .iter()
            .filter(|l| l.contains("send method measured"))
        {
            println!("{:>16}: {}", "ours measured", line.trim());
        }
        println!("{:>16}: {}", "ours calibrated", chosen.trim());
        println!();
    }
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
    let ndt7 = if s.ndt7 {
        Some(ndt7_vs_reverse(&s, &mut servers[0])?)
    } else {
        None
    };
    let ceiling = if s.ceiling {
        let (ours, rest) = servers.split_at_mut(REFERENCE);
        Some(udp_ceiling(&s, &mut ours[0], &mut rest[0])?)
    } else {
        None
    };
    drop(servers);
    let probe_rows = probe_cases(&s, &s.probe_cases, work.path())?;

    if !rows.is_empty() {
        println!();
        print_table(&rows);
    }
    if let Some(c) = &ceiling {
        println!();
        c.print();
    }
    if !probe_rows.is_empty() {
        println!();
        print_probe_table(&probe_rows);
    }
    if let Some(n) = &ndt7 {
        println!();
        n.print();
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
        "probe_cases": probe_rows.iter().map(ProbeRow::to_json).collect::<Vec<_>>(),
        "ndt7_download": ndt7.as_ref().map(Ndt7Row::to_json),
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
