//! `udp-ceiling`: the offered UDP rate raised step by step against ours
//! and the reference, up to the rate each receives with under 1 % loss.

use super::*;

/// The name that picks the UDP ceiling search.
pub(crate) const CEILING: &str = "udp-ceiling";
/// Offered rates of the ceiling search, in Mbit/s, lowest first; 0 is
/// `-b 0` (as fast as the client can send).
pub(crate) const CEILING_STEPS_MBPS: &[u64] =
    &[250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 6000, 0];
/// Loss (percent, at the receiver) under which a rate counts as carried.
pub(crate) const CEILING_LOSS_PERCENT: f64 = 1.0;
/// Most runs per step and server (the median is taken).
pub(crate) const CEILING_RUNS: usize = 3;

/// One server's median figures at one offered rate.
#[derive(Clone, Copy)]
pub(crate) struct Step {
    pub(crate) bps: f64,
    pub(crate) loss: f64,
}

/// Whether a server's figures at a rate show it carried: loss under the limit.
pub(crate) fn carried(x: Option<Step>) -> bool {
    x.is_some_and(|x| x.loss < CEILING_LOSS_PERCENT)
}

/// Index of each server in [`Rung::servers`].
pub(crate) const OURS: usize = 0;
pub(crate) const STOCK: usize = 1;

/// One offered rate and what each server made of it.
pub(crate) struct Rung {
    /// Mbit/s; 0 = unlimited.
    pub(crate) mbps: u64,
    /// Ours, then stock.
    pub(crate) servers: [Option<Step>; 2],
}

/// What the ceiling search found, lowest rate first.
pub(crate) struct Ceiling {
    /// The stock server's label (the reference's, e.g. `stock 3.21`).
    pub(crate) stock: String,
    pub(crate) rungs: Vec<Rung>,
}

/// The `-b` argument for `mbps` (0 = unlimited).
pub(crate) fn rate_arg(mbps: u64) -> String {
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
pub(crate) fn udp_ceiling(
    s: &Settings,
    ours: &mut Server,
    stock: &mut Server,
) -> Result<Ceiling, String> {
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
    pub(crate) fn reached(&self, who: usize) -> bool {
        self.rungs.iter().any(|r| !carried(r.servers[who]))
    }

    /// The highest received rate (bits/s) up to which server `who`'s loss
    /// stayed under the limit: the rungs before its first one at or over it.
    pub(crate) fn best(&self, who: usize) -> f64 {
        self.rungs
            .iter()
            .map_while(|r| Some(r.servers[who]).filter(|&x| carried(x)).flatten())
            .map(|x| x.bps)
            .fold(0.0, f64::max)
    }

    pub(crate) fn print(&self) {
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

    pub(crate) fn to_json(&self) -> Value {
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
