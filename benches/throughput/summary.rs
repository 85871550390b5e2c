//! Medians and ratios of a case's runs, the printed table, and the
//! figures written as JSON.

use super::*;

/// One server's figures for one case.
pub(crate) enum Summary {
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

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
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
pub(crate) fn paired_ratio(a: &[Outcome], b: &[Outcome]) -> Option<f64> {
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

pub(crate) fn summarise(runs: &[Outcome]) -> Summary {
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
    pub(crate) fn to_json(&self) -> Value {
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

    pub(crate) fn median_bps(&self) -> Option<f64> {
        match self {
            Summary::Ok { median_bps, .. } => Some(*median_bps),
            _ => None,
        }
    }
}

/// Index of the reference (the first stock server) among the servers:
/// after ours and ours with `--copy`.
pub(crate) const REFERENCE: usize = 2;

/// One server's figures in one case.
pub(crate) struct Cell {
    pub(crate) label: String,
    pub(crate) summary: Summary,
    /// Median of the per-round throughput ratios to the reference.
    pub(crate) paired: Option<f64>,
}

pub(crate) struct Row {
    pub(crate) case: &'static Case,
    pub(crate) cells: Vec<Cell>,
}

impl Row {
    pub(crate) fn new(case: &'static Case, labels: &[String], runs: &[Vec<Outcome>]) -> Row {
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

    pub(crate) fn cpu_per_gb(&self, i: usize) -> Option<f64> {
        match self.cells.get(i).map(|c| &c.summary) {
            Some(Summary::Ok { cpu_s_per_gb, .. }) => Some(*cpu_s_per_gb),
            _ => None,
        }
    }

    /// Throughput of server `i` over the reference's (medians).
    pub(crate) fn ratio(&self, i: usize) -> Option<f64> {
        Some(
            self.cells[i].summary.median_bps()?
                / self.cells.get(REFERENCE)?.summary.median_bps()?,
        )
    }

    /// CPU per GB of server `i` over the reference's.
    pub(crate) fn cpu_ratio(&self, i: usize) -> Option<f64> {
        Some(self.cpu_per_gb(i)? / self.cpu_per_gb(REFERENCE)?)
    }

    pub(crate) fn to_json(&self) -> Value {
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

pub(crate) fn print_table(rows: &[Row]) {
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

pub(crate) fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the figures under `<target>/bench/`, next to the binary cargo built.
pub(crate) fn write_figures(ours_exe: &Path, doc: &Value) -> Result<PathBuf, String> {
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
