//! The headline of a result: one plain sentence saying what a test
//! reached and what limited it, in words a person without networking
//! knowledge follows. Built from the result object alone (its rates, its
//! direction, the verdict's kind, the link speed), so it is made when a
//! result is shown and never stored. No I/O here.
//!
//! Directions are the device's: a device that ran `-R` (the box sent)
//! received; an ndt7 test downloads and uploads; a probe is the box
//! sending to or receiving from its target.

use super::limit::LimitedBy;
use super::result::TestResult;
use super::words::{short_rate, whole_percent};

/// The share of the link's speed from which a test ran "at full speed".
pub const FULL_SPEED_SHARE: f64 = 0.90;

/// The headline of `r`.
pub fn headline(r: &TestResult) -> String {
    let rate = |bps: Option<f64>| bps.filter(|b| b.is_finite() && *b > 0.0);
    let (sent, received) = (rate(r.send_bps), rate(r.receive_bps));
    if sent.is_none() && received.is_none() {
        return if r.error.is_some() {
            "The test ended early and moved no data.".to_string()
        } else {
            "The test moved no data.".to_string()
        };
    }
    let fastest = sent.unwrap_or(0.0).max(received.unwrap_or(0.0));
    let link_share = r
        .link_bps
        .filter(|l| l.is_finite() && *l > 0.0)
        .map(|l| (l, fastest / l));
    let mut sentence = what_moved(r, sent, received);
    if let Some((link, share)) = link_share {
        sentence.push_str(&format!(
            " — {} of this box's {} link",
            whole_percent(share),
            short_rate(link)
        ));
    }
    let full_speed = link_share.is_some_and(|(_, s)| s >= FULL_SPEED_SHARE);
    if let Some(why) = what_limited(r, full_speed) {
        sentence.push_str(": ");
        sentence.push_str(&why);
    }
    sentence.push('.');
    sentence
}

/// Who ran the test, as the sentence's subject.
fn who(r: &TestResult) -> String {
    let ndt7 = r.protocol.eq_ignore_ascii_case("ndt7");
    match (r.name.as_deref().filter(|n| !n.is_empty()), ndt7) {
        (Some(name), true) => format!("{name}'s browser"),
        (Some(name), false) => name.to_string(),
        (None, true) => "The browser".to_string(),
        (None, false) => match &r.client {
            Some(ip) => format!("The device at {ip}"),
            None => "The device".to_string(),
        },
    }
}

/// What moved, which way, as the sentence's first part.
fn what_moved(r: &TestResult, sent: Option<f64>, received: Option<f64>) -> String {
    let both = |a: &str, x: f64, b: &str, y: f64| {
        format!("{a} {} and {b} {}", short_rate(x), short_rate(y))
    };
    if r.kind == Some(super::probe_log::KIND) {
        let target = r.target.as_deref().unwrap_or("its target");
        // From the target's side: it received what the box sent.
        return match (received, sent) {
            (Some(x), Some(y)) => format!(
                "The box sent {} to {target} and received {} from it",
                short_rate(x),
                short_rate(y)
            ),
            (Some(x), None) => format!("The box sent {} to {target}", short_rate(x)),
            (None, Some(y)) => format!("The box received {} from {target}", short_rate(y)),
            (None, None) => String::new(),
        };
    }
    let who = who(r);
    if r.protocol.eq_ignore_ascii_case("ndt7") {
        return match (sent, received) {
            (Some(x), Some(y)) => format!("{who} {}", both("downloaded", x, "uploaded", y)),
            (Some(x), None) => format!("{who} downloaded {}", short_rate(x)),
            (None, Some(y)) => format!("{who} uploaded {}", short_rate(y)),
            (None, None) => String::new(),
        };
    }
    match (sent, received) {
        (Some(x), Some(y)) => format!("{who} {} at the same time", both("received", x, "sent", y)),
        (Some(x), None) => format!("{who} received {} from the box", short_rate(x)),
        (None, Some(y)) => format!("{who} sent {} to the box", short_rate(y)),
        (None, None) => String::new(),
    }
}

/// What held the test back, in plain words; `None` where nothing is
/// worth saying (an ndt7 test that was not judged and did not fill the
/// link).
fn what_limited(r: &TestResult, full_speed: bool) -> Option<String> {
    let probe = r.kind == Some(super::probe_log::KIND);
    // The end that received what the box sent.
    let receiver = if probe {
        r.target.clone().unwrap_or_else(|| "the target".to_string())
    } else {
        match r.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => "the device".to_string(),
        }
    };
    let udp = r.protocol.eq_ignore_ascii_case("UDP");
    let text = match r.limited_by {
        Some(LimitedBy::BitrateTarget) => {
            let asked = r
                .target_bps
                .map_or("the rate".to_string(), |t| format!("the {}", short_rate(t)));
            format!(
                "it reached {asked} it asked for, so this is the rate it was paced to, \
                 not what the network can carry"
            )
        }
        Some(LimitedBy::ReceiveWindow) => format!(
            "{receiver} could not take data faster (its receive window was often full), \
             so the network was not the limit"
        ),
        Some(LimitedBy::SendBuffer) => "the box's send buffer was often full, so the box, \
             not the network, held the rate back"
            .to_string(),
        Some(LimitedBy::ServerCpu) => {
            "the box's processor was fully busy, so the box, not the network, was the limit"
                .to_string()
        }
        Some(LimitedBy::PiThrottled) => "the box slowed itself down (too hot, or too little \
             power), so the rate is lower than the network allows"
            .to_string(),
        _ if full_speed => "the network ran at full speed".to_string(),
        Some(LimitedBy::Network) if udp => match r.lost_percent {
            Some(lost) => format!(
                "{lost:.1} % of the data was lost on the way, so the network could not \
                 carry this rate"
            ),
            None => "data was lost on the way, so the network was the limit".to_string(),
        },
        Some(LimitedBy::Network) => "some data was lost on the way and sent again, so the \
             network (or something on its path) was the limit"
            .to_string(),
        Some(LimitedBy::Unknown) => "nothing recorded shows what held it back".to_string(),
        None => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::results::tests::result;

    fn tcp(send: Option<f64>, receive: Option<f64>) -> TestResult {
        TestResult {
            name: Some("alice".into()),
            send_bps: send,
            receive_bps: receive,
            ..result(5201, 1)
        }
    }

    #[test]
    fn a_test_that_filled_the_link() {
        let r = TestResult {
            link_bps: Some(1e9),
            limited_by: Some(LimitedBy::Network),
            ..tcp(Some(941_234_567.0), None)
        };
        assert_eq!(
            headline(&r),
            "alice received 941 Mbit/s from the box — 94 % of this box's 1 Gbit/s link: \
             the network ran at full speed."
        );
    }

    #[test]
    fn a_receive_window_that_held_it_back() {
        let r = TestResult {
            limited_by: Some(LimitedBy::ReceiveWindow),
            reverse: true,
            ..tcp(Some(5.2e9), None)
        };
        assert_eq!(
            headline(&r),
            "alice received 5.2 Gbit/s from the box: alice could not take data faster \
             (its receive window was often full), so the network was not the limit."
        );
    }

    #[test]
    fn a_udp_test_at_its_target() {
        let r = TestResult {
            protocol: "UDP".into(),
            name: None,
            client: Some("192.168.1.23".into()),
            target_bps: Some(50e6),
            limited_by: Some(LimitedBy::BitrateTarget),
            ..tcp(None, Some(49_990_000.0))
        };
        assert_eq!(
            headline(&r),
            "The device at 192.168.1.23 sent 50 Mbit/s to the box: it reached the 50 Mbit/s \
             it asked for, so this is the rate it was paced to, not what the network can carry."
        );
    }

    #[test]
    fn directions_of_bidir_ndt7_and_probes() {
        let bidir = TestResult {
            bidir: true,
            limited_by: Some(LimitedBy::Unknown),
            ..tcp(Some(9e8), Some(8e8))
        };
        assert_eq!(
            headline(&bidir),
            "alice received 900 Mbit/s and sent 800 Mbit/s at the same time: nothing \
             recorded shows what held it back."
        );
        let ndt7 = TestResult {
            protocol: "ndt7".into(),
            ..tcp(Some(94.4e6), None)
        };
        assert_eq!(headline(&ndt7), "alice's browser downloaded 94.4 Mbit/s.");
        let probe = TestResult {
            kind: Some(crate::store::probe_log::KIND),
            target: Some("10.0.0.2:5201".into()),
            name: None,
            limited_by: Some(LimitedBy::ReceiveWindow),
            ..tcp(None, Some(2.5e9))
        };
        assert_eq!(
            headline(&probe),
            "The box sent 2.5 Gbit/s to 10.0.0.2:5201: 10.0.0.2:5201 could not take data \
             faster (its receive window was often full), so the network was not the limit."
        );
        let nothing = TestResult {
            error: Some("cut".into()),
            ..tcp(None, Some(0.0))
        };
        assert_eq!(
            headline(&nothing),
            "The test ended early and moved no data."
        );
    }

    #[test]
    fn loss_and_a_slow_link() {
        let udp = TestResult {
            protocol: "UDP".into(),
            lost_percent: Some(12.34),
            limited_by: Some(LimitedBy::Network),
            link_bps: Some(1e9),
            ..tcp(None, Some(80e6))
        };
        assert_eq!(
            headline(&udp),
            "alice sent 80 Mbit/s to the box — 8 % of this box's 1 Gbit/s link: 12.3 % of \
             the data was lost on the way, so the network could not carry this rate."
        );
    }
}
