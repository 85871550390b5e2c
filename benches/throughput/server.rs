//! The servers under test as child processes, and one client run against
//! one of them with its CPU and outcome.

use super::*;

/// A running server under test.
pub(crate) struct Server {
    /// `ours`, `ours --copy`, or `stock <version>`.
    pub(crate) label: String,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    pub(crate) process: Process,
}

/// Which server, as its process.
pub(crate) enum Process {
    Ours(Daemon),
    Stock(StockServer),
}

impl Server {
    /// The binary cargo built for this bench ([`support::daemon::BIN`]),
    /// copy-free or (`copy`) with `--copy`.
    pub(crate) fn ours(work: &Path, copy: bool) -> Result<Server, String> {
        let (label, dir) = if copy {
            ("ours --copy", work.join("ours-copy"))
        } else {
            ("ours", work.join("ours"))
        };
        // Plain HTTP is all the bench uses (and a build without the
        // `https` feature refuses HTTPS).
        let mut launch = Launch::new(&dir).arg("--no-https");
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
    pub(crate) fn stock(exe: &Path, work: &Path, i: usize) -> Result<Server, String> {
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

    pub(crate) fn pid(&self) -> u32 {
        match &self.process {
            Process::Ours(d) => d.pid(),
            Process::Stock(s) => s.pid(),
        }
    }

    pub(crate) fn alive(&mut self) -> bool {
        match &mut self.process {
            Process::Ours(d) => d.alive(),
            Process::Stock(s) => s.alive(),
        }
    }

    pub(crate) fn stderr(&self) -> String {
        match &self.process {
            Process::Ours(d) => d.stderr_text(),
            Process::Stock(s) => s.stderr_text(),
        }
    }

    /// Log entries written so far (each pretty-printed object ends with a
    /// `}` alone on its line).
    pub(crate) fn entries(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |t| t.lines().filter(|l| *l == "}").count())
    }

    /// The newest log entry.
    pub(crate) fn last_entry(&self) -> Option<Value> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .last()
    }
}

// ---------------------------------------------------------------- one test

/// What one test against one server gave.
pub(crate) enum Outcome {
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
    pub(crate) fn brief(&self) -> String {
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

pub(crate) fn run_one(s: &Settings, args: &[&str], server: &mut Server) -> Result<Outcome, String> {
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
