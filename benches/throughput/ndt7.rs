//! `ndt7-download`: our server's CPU per GB for an ndt7 download (M-Lab's
//! `ndt7-client` CLI, plain `ws://`) beside the same server's for a TCP
//! `iperf3 -R` test, taken in turn in every round, and their ratio. The
//! ndt7 bytes are the server's own count (the last measurement's
//! `AppInfo.NumBytes` in `ndt7.json`).

use super::*;

pub(crate) const NDT7: &str = "ndt7-download";

/// Server CPU seconds per GB: `-R`'s and ndt7's medians, and ratios.
pub(crate) struct Ndt7Row {
    reverse: Vec<f64>,
    ndt7: Vec<f64>,
    ndt7_gbps: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The entries in `log` and the bytes of the last one's download.
fn last_download_bytes(log: &Path) -> (usize, Option<f64>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut entries = support::logs::entry_texts(&text);
    let count = entries.len();
    let bytes = entries.pop().and_then(|last| {
        let entry: Value = serde_json::from_str(&last).ok()?;
        let m = entry.pointer("/Download/ServerMeasurements")?.as_array()?;
        m.last()?.pointer("/AppInfo/NumBytes")?.as_f64()
    });
    (count, bytes)
}

pub(crate) fn ndt7_vs_reverse(s: &Settings, ours: &mut Server) -> Result<Ndt7Row, String> {
    let client = support::ndt7::require_client();
    let Process::Ours(daemon) = &ours.process else {
        return Err("ndt7 runs against ours only".into());
    };
    let (http, pid) = (daemon.http, daemon.pid());
    let log = ours.log.with_file_name("ndt7.json");
    let mut row = Ndt7Row {
        reverse: Vec::new(),
        ndt7: Vec::new(),
        ndt7_gbps: Vec::new(),
    };
    for round in 0..s.rounds {
        if let Outcome::Done { bytes, cpu, .. } = run_one(s, &["-R"], ours)? {
            row.reverse.push(cpu / (bytes / 1e9));
        }
        std::thread::sleep(SETTLE);
        let (before, _) = last_download_bytes(&log);
        let cpu0 = cpu_seconds(pid).ok_or("cannot read the server's CPU time")?;
        let started = std::time::Instant::now();
        let out = run_bounded(
            Command::new(&client)
                .args(["--server", &http.to_string(), "--no-locate", "--no-tls"])
                .args(["--no-upload", "--quiet", "--format", "json"]),
            Duration::from_secs(40),
        )?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid).ok_or("cannot read the server's CPU time")? - cpu0;
        if !out.status.success() {
            return Err(format!("ndt7-client failed: {out:?}"));
        }
        let mut bytes = None;
        poll_until(LOG_TIMEOUT, || {
            let (count, last) = last_download_bytes(&log);
            bytes = last.filter(|_| count > before);
            bytes.is_some()
        });
        let bytes = bytes.ok_or("no new ndt7 download in ndt7.json")?;
        row.ndt7.push(cpu / (bytes / 1e9));
        row.ndt7_gbps.push(bytes * 8.0 / secs.max(1.0) / 1e9);
        eprintln!(
            "  {NDT7:<22} round {} -R {:.3} s/GB, ndt7 {:.3} s/GB",
            round + 1,
            row.reverse.last().copied().unwrap_or(f64::NAN),
            cpu / (bytes / 1e9)
        );
        std::thread::sleep(SETTLE);
    }
    Ok(row)
}

impl Ndt7Row {
    pub(crate) fn print(&self) {
        let (r, n) = (median(&self.reverse), median(&self.ndt7));
        println!(
            "{NDT7}: server CPU s/GB, median of {} rounds",
            self.ndt7.len()
        );
        println!("  iperf3 -R   {r:.3}");
        println!("  ndt7        {n:.3}   ({:.2}x -R's)", n / r);
        let ratios: Vec<f64> = self
            .ndt7
            .iter()
            .zip(&self.reverse)
            .map(|(n, r)| n / r)
            .collect();
        println!("  per-round ratio, median {:.2}", median(&ratios));
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "reverse_cpu_s_per_gb": self.reverse,
            "ndt7_cpu_s_per_gb": self.ndt7,
            "ndt7_gbit_s_wall": self.ndt7_gbps,
            "ratio_of_medians": median(&self.ndt7) / median(&self.reverse),
        })
    }
}
