//! How a sending TCP stream moves its bytes, decided without I/O: the
//! methods, the setting (`--send-method`, `--copy`), the choice from a
//! calibration's measurements (cheapest CPU per byte wins), the choice for
//! one test with the reason the log gives, and the calibration file's key
//! and text. The measuring itself is in `server::calibrate`.
//!
//! Which method is cheaper depends on the machine: on one 2-vCPU AMD EPYC VM
//! `sendfile` from an in-memory file cost 0.6× the CPU per GB of a plain
//! `write` for `-R`, on another 1.5×. So nothing here assumes a winner.

use serde::{Deserialize, Serialize};

/// A way of sending TCP test data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMethod {
    /// `write` from the block in memory: the kernel copies it, as stock does.
    Copy,
    /// `sendfile` from the block held in an in-memory file: the kernel
    /// takes page references instead of copying.
    Sendfile,
}

impl SendMethod {
    /// Every method, in the order a calibration measures them.
    pub const ALL: [SendMethod; 2] = [SendMethod::Copy, SendMethod::Sendfile];

    /// Its name on the command line and in the calibration file.
    pub fn name(self) -> &'static str {
        match self {
            SendMethod::Copy => "copy",
            SendMethod::Sendfile => "sendfile",
        }
    }
}

/// What the server was told about sending (`--send-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendSetting {
    /// The calibrated method (the default).
    #[default]
    Auto,
    /// Always this method.
    Forced(SendMethod),
}

/// One measured run of a method against a receiver that copies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The method measured.
    pub method: SendMethod,
    /// Bytes the receiver read.
    pub bytes: u64,
    /// CPU seconds of the sending and the receiving thread together (on
    /// loopback either may do the other's kernel work).
    pub cpu_secs: f64,
    /// How long the run lasted.
    pub wall_secs: f64,
}

impl Measurement {
    /// CPU seconds per GB (10⁹ bytes); infinite when nothing moved.
    pub fn cpu_per_gb(&self) -> f64 {
        if self.bytes == 0 {
            return f64::INFINITY;
        }
        self.cpu_secs * 1e9 / self.bytes as f64
    }

    /// Throughput in Gbit/s; 0 when the run took no time.
    pub fn gbit_s(&self) -> f64 {
        if self.wall_secs <= 0.0 {
            return 0.0;
        }
        self.bytes as f64 * 8.0 / self.wall_secs / 1e9
    }
}

/// One method's figures over a calibration's rounds (medians).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The method.
    pub method: SendMethod,
    /// Median CPU s/GB of sender and receiver together.
    pub cpu_s_per_gb: f64,
    /// Median throughput, Gbit/s.
    pub gbit_s: f64,
    /// Rounds measured.
    pub rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each method's medians, in [`SendMethod::ALL`] order; methods without a
/// run that moved bytes are left out.
pub fn figures(runs: &[Measurement]) -> Vec<Figures> {
    SendMethod::ALL
        .iter()
        .filter_map(|&m| {
            let mine: Vec<_> = runs
                .iter()
                .filter(|r| r.method == m && r.bytes > 0)
                .collect();
            (!mine.is_empty()).then(|| Figures {
                method: m,
                cpu_s_per_gb: median(mine.iter().map(|r| r.cpu_per_gb()).collect()),
                gbit_s: median(mine.iter().map(|r| r.gbit_s()).collect()),
                rounds: mine.len(),
            })
        })
        .collect()
}

/// How much less CPU per byte a method must cost than the one before it
/// in [`SendMethod::ALL`] (copying first, stock's way) to be chosen: on a
/// shared machine one calibration's medians move by several percent.
pub const MARGIN: f64 = 0.10;

/// The method the figures found cheapest in CPU per byte, by more than
/// [`MARGIN`]; within it, the earlier one (copying, stock's way). `None`
/// when nothing was measured.
pub fn cheapest(figs: &[Figures]) -> Option<SendMethod> {
    let mut best: Option<&Figures> = None;
    for f in figs.iter().filter(|f| f.cpu_s_per_gb.is_finite()) {
        best = match best {
            None => Some(f),
            Some(b) if f.cpu_s_per_gb < b.cpu_s_per_gb * (1.0 - MARGIN) => Some(f),
            keep => keep,
        };
    }
    best.map(|f| f.method)
}

/// Where the calibration stands, as a test sees it when it starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Calibration {
    /// Still measuring.
    Running,
    /// Measured (or read back from the file): this method is cheapest.
    Chosen(SendMethod),
    /// It could not be measured; the text says why.
    Failed(String),
}

/// The method one test's sending streams start with, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The method.
    pub method: SendMethod,
    /// Why, as the log's `data_path` says it: `calibrated`, `forced`,
    /// `client -Z`, `--copy`, or `fallback: <reason>`.
    pub reason: String,
}

/// The choice for one test: a forced method wins; under `--copy` stock's
/// behaviour (copy unless the client asked for `-Z`); otherwise a client's
/// `-Z` asks for `sendfile` as it does of stock, and the calibration decides
/// the rest. Until a calibration has a result, tests copy.
pub fn choose(
    setting: SendSetting,
    copy: bool,
    client_zerocopy: bool,
    calibration: &Calibration,
) -> Choice {
    let pick = |method: SendMethod, reason: &str| Choice {
        method,
        reason: reason.to_string(),
    };
    match (setting, calibration) {
        (SendSetting::Forced(m), _) => pick(m, "forced"),
        _ if client_zerocopy => pick(SendMethod::Sendfile, "client -Z"),
        _ if copy => pick(SendMethod::Copy, "--copy"),
        (SendSetting::Auto, Calibration::Chosen(m)) => pick(*m, "calibrated"),
        (SendSetting::Auto, Calibration::Running) => {
            pick(SendMethod::Copy, "fallback: calibration still running")
        }
        (SendSetting::Auto, Calibration::Failed(why)) => pick(
            SendMethod::Copy,
            &format!("fallback: calibration failed: {why}"),
        ),
    }
}

/// What a calibration result is valid for: the same kernel, the same
/// binary, the same CPU. Any difference means measuring again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The program's version.
    pub version: String,
    /// The executable's identity: its size and modification time.
    pub build: String,
    /// The CPU model.
    pub cpu: String,
}

/// The calibration file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What it is valid for.
    pub key: Key,
    /// The method chosen.
    pub method: SendMethod,
    /// The figures it was chosen from.
    pub figures: Vec<Figures>,
    /// When it was measured, seconds since the Unix epoch.
    pub measured_at: u64,
}

/// The file's text for `record`.
pub fn render(record: &Record) -> String {
    serde_json::to_string_pretty(record).unwrap_or_default() + "\n"
}

/// The method a file's `text` holds, if the text is a record for `key`.
pub fn read_back(text: &str, key: &Key) -> Option<Record> {
    let record: Record = serde_json::from_str(text).ok()?;
    (record.key == *key).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SendMethod::*;

    fn run(method: SendMethod, gb: f64, cpu: f64, secs: f64) -> Measurement {
        Measurement {
            method,
            bytes: (gb * 1e9) as u64,
            cpu_secs: cpu,
            wall_secs: secs,
        }
    }

    #[test]
    fn the_cheapest_per_byte_wins_by_median() {
        // Copy: 0.36, 0.40, 0.90 s/GB (median 0.40); sendfile: 0.54 each.
        let runs = [
            run(Copy, 1.0, 0.36, 0.4),
            run(Sendfile, 1.0, 0.54, 0.5),
            run(Copy, 1.0, 0.90, 0.4),
            run(Sendfile, 1.0, 0.54, 0.5),
            run(Copy, 1.0, 0.40, 0.4),
            run(Sendfile, 1.0, 0.54, 0.5),
        ];
        let f = figures(&runs);
        assert_eq!(f.len(), 2);
        assert!((f[0].cpu_s_per_gb - 0.40).abs() < 1e-9);
        assert!((f[0].gbit_s - 20.0).abs() < 1e-9);
        assert_eq!(f[1].rounds, 3);
        assert_eq!(cheapest(&f), Some(Copy));
        // The other way round on another machine.
        let runs = [run(Copy, 1.0, 0.47, 0.5), run(Sendfile, 1.0, 0.31, 0.3)];
        assert_eq!(cheapest(&figures(&runs)), Some(Sendfile));
    }

    #[test]
    fn within_the_margin_copying_stays() {
        // A calibration disturbed by other work: 3 % apart.
        let runs = [run(Copy, 1.0, 0.474, 0.8), run(Sendfile, 1.0, 0.460, 0.5)];
        assert_eq!(cheapest(&figures(&runs)), Some(Copy));
        let runs = [run(Copy, 1.0, 0.400, 0.4), run(Sendfile, 1.0, 0.359, 0.4)];
        assert_eq!(cheapest(&figures(&runs)), Some(Sendfile));
    }

    #[test]
    fn a_method_that_moved_nothing_is_not_chosen() {
        let runs = [run(Copy, 1.0, 0.5, 0.5), run(Sendfile, 0.0, 0.1, 0.5)];
        let f = figures(&runs);
        assert_eq!(f.len(), 1);
        assert_eq!(cheapest(&f), Some(Copy));
        assert_eq!(cheapest(&[]), None);
    }

    #[test]
    fn each_test_gets_a_method_and_a_reason() {
        let auto = SendSetting::Auto;
        let chosen = Calibration::Chosen(Sendfile);
        let c = |s, copy, z, cal: &Calibration| {
            let c = choose(s, copy, z, cal);
            (c.method, c.reason)
        };
        assert_eq!(
            c(auto, false, false, &chosen),
            (Sendfile, "calibrated".into())
        );
        let copy_chosen = Calibration::Chosen(Copy);
        assert_eq!(c(auto, false, false, &copy_chosen).0, Copy);
        assert_eq!(
            c(SendSetting::Forced(Copy), false, true, &chosen),
            (Copy, "forced".into())
        );
        assert_eq!(
            c(SendSetting::Forced(Sendfile), true, false, &copy_chosen),
            (Sendfile, "forced".into())
        );
        assert_eq!(
            c(auto, false, true, &copy_chosen),
            (Sendfile, "client -Z".into())
        );
        assert_eq!(
            c(auto, true, true, &copy_chosen),
            (Sendfile, "client -Z".into())
        );
        assert_eq!(c(auto, true, false, &chosen), (Copy, "--copy".into()));
        assert_eq!(
            c(auto, false, false, &Calibration::Running),
            (Copy, "fallback: calibration still running".into())
        );
        assert_eq!(
            c(
                auto,
                false,
                false,
                &Calibration::Failed("no loopback".into())
            ),
            (Copy, "fallback: calibration failed: no loopback".into())
        );
    }

    fn key() -> Key {
        Key {
            kernel: "6.18.44".into(),
            version: "0.1.0".into(),
            build: "4194304-1700000000".into(),
            cpu: "AMD EPYC".into(),
        }
    }

    #[test]
    fn a_record_is_read_back_only_for_its_key() {
        let record = Record {
            key: key(),
            method: Copy,
            figures: figures(&[run(Copy, 1.0, 0.4, 0.5)]),
            measured_at: 1_700_000_000,
        };
        let text = render(&record);
        assert_eq!(read_back(&text, &key()), Some(record));
        for change in [
            |k: &mut Key| k.kernel.push('1'),
            |k: &mut Key| k.version.push('1'),
            |k: &mut Key| k.build.push('1'),
            |k: &mut Key| k.cpu.push('1'),
        ] {
            let mut other = key();
            change(&mut other);
            assert_eq!(read_back(&text, &other), None);
        }
        assert_eq!(read_back("{\"key\":", &key()), None);
        assert_eq!(read_back("", &key()), None);
    }
}
