//! The health of the machine during a test: CPU temperature and the
//! Raspberry Pi firmware's throttling flags, read from sysfs where present
//! (absent elsewhere), so a user can tell when the Pi itself was the
//! bottleneck.

use std::path::{Path, PathBuf};

use crate::json::Json;

/// Where to read from; `/` normally, a fake tree in tests.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    root: PathBuf,
}

impl Default for HealthProbe {
    fn default() -> Self {
        HealthProbe {
            root: PathBuf::from("/"),
        }
    }
}

/// Thermal zone 0: the SoC on a Pi (millidegrees Celsius).
const TEMP: &str = "sys/class/thermal/thermal_zone0/temp";
/// The Pi firmware's throttling state (hex bit field).
const THROTTLED: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

/// The meaning of the "now" bits of `get_throttled` (the same bits shifted
/// by 16 say "has occurred since boot").
const FLAGS: [(u32, &str); 4] = [
    (1 << 0, "under-voltage"),
    (1 << 1, "frequency capped"),
    (1 << 2, "throttled"),
    (1 << 3, "soft temperature limit"),
];

impl HealthProbe {
    /// A probe reading the sysfs tree under `root`.
    pub fn new(root: &Path) -> HealthProbe {
        HealthProbe {
            root: root.to_path_buf(),
        }
    }

    /// CPU temperature, °C.
    pub fn temperature(&self) -> Option<f64> {
        let text = std::fs::read_to_string(self.root.join(TEMP)).ok()?;
        let milli: f64 = text.trim().parse().ok()?;
        (milli.is_finite()).then_some(milli / 1000.0)
    }

    /// The firmware's throttling bits.
    pub fn throttled(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.root.join(THROTTLED)).ok()?;
        let t = text.trim();
        u32::from_str_radix(t.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
    }

    /// A snapshot of both.
    pub fn sample(&self) -> Sample {
        Sample {
            temperature: self.temperature(),
            throttled: self.throttled(),
        }
    }
}

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// °C, if the machine reports it.
    pub temperature: Option<f64>,
    /// Pi throttling bits, if the machine has them.
    pub throttled: Option<u32>,
}

/// What was seen over a test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    last: Sample,
    max_temperature: Option<f64>,
    throttled_now_bits: u32,
}

impl Record {
    /// Adds a reading (at the start, every interval and at the end).
    pub fn add(&mut self, s: Sample) {
        if let Some(t) = s.temperature {
            self.max_temperature = Some(self.max_temperature.map_or(t, |m: f64| m.max(t)));
        }
        if let Some(bits) = s.throttled {
            self.throttled_now_bits |= bits & 0xf;
        }
        self.last = s;
    }

    /// The `health` object of our log key: the temperature at the end and
    /// its maximum, the throttling state at the end and what was seen during
    /// the test, and the server's CPU use. Fields the machine cannot report
    /// are left out.
    pub fn to_json(&self, server_cpu_percent: f64) -> Json {
        let mut o = Json::obj();
        if let Some(t) = self.last.temperature {
            o.push("cpu_temp_c", round1(t));
        }
        if let Some(m) = self.max_temperature {
            o.push("cpu_temp_max_c", round1(m));
        }
        if let Some(bits) = self.last.throttled {
            o.push("throttled", format!("0x{bits:x}"));
            let during: Vec<Json> = FLAGS
                .iter()
                .filter(|(bit, _)| self.throttled_now_bits & bit != 0)
                .map(|(_, n)| Json::from(*n))
                .collect();
            o.push("throttled_during", Json::Arr(during));
        }
        o.with("server_cpu_percent", round1(server_cpu_percent))
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(temp: Option<&str>, throttled: Option<&str>) -> (tempfile::TempDir, HealthProbe) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(t) = temp {
            let p = dir.path().join(TEMP);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        if let Some(t) = throttled {
            let p = dir.path().join(THROTTLED);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        }
        let probe = HealthProbe::new(dir.path());
        (dir, probe)
    }

    #[test]
    fn reads_a_pi() {
        let (_d, probe) = fake(Some("48312\n"), Some("0x50005\n"));
        assert_eq!(probe.temperature(), Some(48.312));
        assert_eq!(probe.throttled(), Some(0x50005));
        let mut r = Record::default();
        r.add(probe.sample());
        r.add(Sample {
            temperature: Some(51.04),
            throttled: Some(0x50000),
        });
        let j = r.to_json(12.34);
        assert_eq!(j.get("cpu_temp_c"), Some(&Json::Num(51.0)));
        assert_eq!(j.get("cpu_temp_max_c"), Some(&Json::Num(51.0)));
        assert_eq!(j.get("throttled"), Some(&Json::Str("0x50000".into())));
        assert_eq!(
            j.get("throttled_during"),
            Some(&Json::Arr(vec![
                Json::from("under-voltage"),
                Json::from("throttled")
            ]))
        );
        assert_eq!(j.get("server_cpu_percent"), Some(&Json::Num(12.3)));
    }

    #[test]
    fn absent_elsewhere() {
        let (_d, probe) = fake(None, None);
        let mut r = Record::default();
        r.add(probe.sample());
        let j = r.to_json(5.0);
        assert_eq!(j, Json::obj().with("server_cpu_percent", 5.0));
    }

    #[test]
    fn garbage_is_absent() {
        let (_d, probe) = fake(Some("hot"), Some("zz"));
        assert_eq!(probe.sample(), Sample::default());
    }
}
