//! Tests of the session on a simulated clock: the control-message
//! exchange in [`exchange`], the data-phase rules (ticks, omit, bitrate cap,
//! broken and stuck streams, idle and grace, buffers, the allow-list) in
//! [`data_phase`]; the helpers both drive a session with are here.

mod data_phase;
mod exchange;

use super::*;
use crate::protocol::wire::COOKIE_LEN;

pub(super) const PARAMS: &[u8] = br#"{"tcp":true,"omit":0,"time":2,"parallel":2,"len":131072}"#;
pub(super) const RESULTS: &str = r#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{"id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0},{"id":3,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#;

pub(super) fn cookie() -> Cookie {
    Cookie([b'a'; COOKIE_LEN])
}

pub(super) struct Clock(pub(super) Instant);
impl Clock {
    pub(super) fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

/// Default limits with an idle limit of `secs`.
pub(super) fn idle_after(secs: u64) -> Limits {
    Limits {
        rcv_timeout: Duration::from_secs(secs),
        ..Limits::default()
    }
}

/// A tick that saw nothing move.
pub(super) fn tick() -> Event {
    Event::Tick(Counters::default())
}

pub(super) fn running(clock: &Clock) -> Session {
    running_with(clock, Session::new(clock.at(0.0), Limits::default()))
}

/// Drives `s` (new at 0 s) to the data phase of the two-stream [`PARAMS`].
pub(super) fn running_with(clock: &Clock, s: Session) -> Session {
    to_running(clock, s, PARAMS, 0.1)
}

/// Drives `s` (new at 0 s) through the exchange of `params` to the data
/// phase, its streams connecting at `connect_at` seconds, checking each step.
fn to_running(clock: &Clock, mut s: Session, params: &[u8], connect_at: f64) -> Session {
    assert_eq!(
        s.handle(clock.at(0.0), Event::Cookie(cookie())),
        vec![Action::Send(State::ParamExchange)]
    );
    assert_eq!(s.expect(), Expect::Params);
    assert_eq!(
        s.handle(clock.at(0.0), Event::Params(params.to_vec())),
        vec![Action::Prepare]
    );
    assert_eq!(s.expect(), Expect::Nothing);
    assert_eq!(
        s.handle(clock.at(0.0), Event::Prepared),
        vec![Action::Send(State::CreateStreams)]
    );
    let want = s.params().map_or(1, TestParams::stream_count);
    for _ in 1..want {
        assert_eq!(
            s.handle(clock.at(connect_at), Event::StreamConnected),
            vec![]
        );
    }
    assert_eq!(
        s.handle(clock.at(connect_at), Event::StreamConnected),
        vec![
            Action::Send(State::TestStart),
            Action::Send(State::TestRunning),
            Action::StartTest
        ]
    );
    assert_eq!(s.phase(), Phase::Running);
    s
}

/// A session in the data phase of `params`, its streams started at 0 s.
pub(super) fn started(clock: &Clock, limits: Limits, policy: Policy, params: &[u8]) -> Session {
    let s = Session::new(clock.at(0.0), limits).with_policy(policy);
    let mut s = to_running(clock, s, params, 0.0);
    assert_eq!(s.handle(clock.at(0.0), Event::Started), vec![]);
    s
}

/// Asserts that a data-phase tick sampled its interval and then failed
/// the test with `code` and the log text `text`.
pub(super) fn assert_sampled_then_failed(out: &[Action], code: ErrorCode, text: &str) {
    let want = [
        Action::SampleInterval,
        Action::SendError(code, 0),
        Action::EndTest,
        Action::Finish(Some(text.to_string())),
    ];
    assert_eq!(out, want);
}

pub(super) fn moved(received: u64, sent: u64) -> Event {
    Event::Tick(Counters {
        received,
        sent,
        ..Counters::default()
    })
}
