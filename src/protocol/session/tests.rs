use super::*;
use crate::protocol::wire::COOKIE_LEN;

const PARAMS: &[u8] = br#"{"tcp":true,"omit":0,"time":2,"parallel":2,"len":131072}"#;
const RESULTS: &str = r#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{"id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0},{"id":3,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#;

fn cookie() -> Cookie {
    Cookie([b'a'; COOKIE_LEN])
}

struct Clock(Instant);
impl Clock {
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

/// Default limits with an idle limit of `secs`.
fn idle_after(secs: u64) -> Limits {
    Limits {
        rcv_timeout: Duration::from_secs(secs),
        ..Limits::default()
    }
}

/// A tick that saw nothing move.
fn tick() -> Event {
    Event::Tick(Counters::default())
}

fn running(clock: &Clock) -> Session {
    running_with(clock, Session::new(clock.at(0.0), Limits::default()))
}

/// Drives `s` (new at 0 s) to the data phase of the two-stream [`PARAMS`].
fn running_with(clock: &Clock, mut s: Session) -> Session {
    assert_eq!(
        s.handle(clock.at(0.0), Event::Cookie(cookie())),
        vec![Action::Send(State::ParamExchange)]
    );
    assert_eq!(s.expect(), Expect::Params);
    assert_eq!(
        s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec())),
        vec![Action::Prepare]
    );
    assert_eq!(s.expect(), Expect::Nothing);
    assert_eq!(
        s.handle(clock.at(0.0), Event::Prepared),
        vec![Action::Send(State::CreateStreams)]
    );
    assert_eq!(s.handle(clock.at(0.1), Event::StreamConnected), vec![]);
    assert_eq!(
        s.handle(clock.at(0.1), Event::StreamConnected),
        vec![
            Action::Send(State::TestStart),
            Action::Send(State::TestRunning),
            Action::StartTest
        ]
    );
    assert_eq!(s.phase(), Phase::Running);
    s
}

#[test]
fn normal_test() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    assert_eq!(
        s.handle(clock.at(2.1), Event::StateByte(4)),
        vec![
            Action::EndTest,
            Action::StopStreams,
            Action::Send(State::ExchangeResults)
        ]
    );
    assert_eq!(s.expect(), Expect::Results);
    let actions = s.handle(
        clock.at(2.1),
        Event::ClientResults(RESULTS.as_bytes().to_vec()),
    );
    assert!(matches!(actions[0], Action::KeepClientResults(_)));
    assert_eq!(
        actions[1..],
        [Action::SendResults, Action::Send(State::DisplayResults)]
    );
    assert_eq!(
        s.handle(clock.at(2.2), Event::StateByte(16)),
        vec![Action::Finish(None)]
    );
    assert_eq!(s.phase(), Phase::Finished);
    assert_eq!(s.handle(clock.at(2.2), Event::Eof), vec![]);
}

#[test]
fn eof_after_display_is_clean() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    s.handle(
        clock.at(2.0),
        Event::ClientResults(RESULTS.as_bytes().to_vec()),
    );
    assert_eq!(
        s.handle(clock.at(2.0), Event::Eof),
        vec![Action::Finish(None)]
    );
}

#[test]
fn client_vanishes_mid_test() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    assert_eq!(
        s.handle(clock.at(1.0), Event::Eof),
        vec![
            Action::EndTest,
            Action::Finish(Some(errors::CLIENT_CLOSED.into()))
        ]
    );
}

#[test]
fn client_terminates_while_streams_connect() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    s.handle(clock.at(0.0), Event::Prepared);
    assert_eq!(
        s.handle(clock.at(0.5), Event::StateByte(12)),
        vec![Action::Finish(Some(errors::CLIENT_TERMINATED.into()))]
    );
}

#[test]
fn policy_refuses_long_tests() {
    let clock = Clock(Instant::now());
    let policy = Policy {
        max_duration: Some(1),
        ..Policy::default()
    };
    let mut s = Session::new(clock.at(0.0), Limits::default()).with_policy(policy);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let out = s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::MAX_DURATION, 0));
}

#[test]
fn bad_params_are_reported() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let out = s.handle(clock.at(0.0), Event::Params(b"{\"parallel\":500}".to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::NUM_STREAMS, 0));
    assert!(
        matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - number of parallel"))
    );
}

#[test]
fn unknown_state_byte_is_error_110() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    let out = s.handle(clock.at(1.0), Event::StateByte(7));
    assert_eq!(out[0], Action::SendError(ErrorCode::MESSAGE, 0));
    assert_eq!(out[1], Action::EndTest);
}

#[test]
fn timeouts_per_phase() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    assert_eq!(s.deadline(), Some(clock.at(10.0)));
    let out = s.handle(clock.at(10.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_COOKIE, 0));

    // Running, receiving: idle timeout 120 s unless progress; hard limit
    // time + omit + 40 s.
    let s = running(&clock);
    assert_eq!(s.deadline(), Some(clock.at(0.1 + 42.0)));
    let limits = idle_after(5);
    let mut s = running_with(&clock, Session::new(clock.at(0.0), limits));
    assert_eq!(s.deadline(), Some(clock.at(5.1)));
    let moved = Counters {
        received: 10,
        ..Counters::default()
    };
    s.handle(clock.at(3.0), Event::Tick(moved));
    assert_eq!(s.deadline(), Some(clock.at(8.0)));
    let out = s.handle(clock.at(8.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
    assert!(
        matches!(&out[2], Action::Finish(Some(t)) if t == "error - idle timeout for receiving data")
    );
}

#[test]
fn read_start_then_read_total() {
    let clock = Clock(Instant::now());
    // Nothing at all: the start limit (10 s) applies.
    let mut s = Session::new(clock.at(0.0), Limits::default());
    assert!(s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(10.0)));
    // Some bytes came: the whole message has the total (30 s) from the
    // start of the phase.
    assert_eq!(s.handle(clock.at(4.0), Event::ReadStarted), vec![]);
    assert!(!s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(30.0)));
    // The next message starts a new phase with its own limits.
    s.handle(clock.at(5.0), Event::Cookie(cookie()));
    assert!(s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(15.0)));
    let out = s.handle(clock.at(15.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_PARAMS, 0));
    assert!(
        matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - unable to receive parameters"))
    );
    assert_eq!(s.phase(), Phase::Finished);
    assert_eq!(s.deadline(), None);

    // Results that never come: 117 after the start limit.
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    assert_eq!(s.deadline(), Some(clock.at(12.0)));
    let out = s.handle(clock.at(12.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));

    // A short limit from the command line.
    let limits = Limits {
        read_start: Duration::from_millis(500),
        read_total: Duration::from_millis(1500),
        ..Limits::default()
    };
    let mut s = Session::new(clock.at(0.0), limits);
    assert_eq!(s.deadline(), Some(clock.at(0.5)));
    s.handle(clock.at(0.1), Event::ReadStarted);
    assert_eq!(s.deadline(), Some(clock.at(1.5)));
}

#[test]
fn streams_that_never_connect_time_out() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    s.handle(clock.at(1.0), Event::Prepared);
    assert_eq!(s.deadline(), Some(clock.at(31.0)));
    s.handle(clock.at(2.0), Event::StreamConnected);
    let out = s.handle(clock.at(31.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::STREAM_ACCEPT, 0));
    assert!(matches!(out[1], Action::Finish(Some(_))));
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let clock = Clock(Instant::now());
    let limits = idle_after(5);
    let mut s = Session::new(clock.at(0.0), limits);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let reverse = br#"{"tcp":true,"time":0,"num":1000000000,"reverse":true}"#;
    s.handle(clock.at(0.0), Event::Params(reverse.to_vec()));
    s.handle(clock.at(0.0), Event::Prepared);
    s.handle(clock.at(0.0), Event::StreamConnected);
    // An untimed reverse test: only the send-idle rule bounds it.
    assert_eq!(s.deadline(), Some(clock.at(5.0)));
    // Receiving nothing is normal when only sending.
    let pacing = Counters {
        pacing: true,
        ..Counters::default()
    };
    s.handle(clock.at(4.0), Event::Tick(pacing));
    assert_eq!(s.deadline(), Some(clock.at(9.0)));
    // A timeout reported before the deadline changes nothing.
    assert_eq!(s.handle(clock.at(8.0), tick()), vec![]);
    let out = s.handle(clock.at(9.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
    assert_eq!(out[1], Action::EndTest);
    assert_eq!(
        out[2],
        Action::Finish(Some("error - idle timeout for sending data".into()))
    );
}

#[test]
fn bad_parameter_documents_get_their_codes() {
    let clock = Clock(Instant::now());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_in_object = format!(
        r#"{{"title":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&[u8], i32)> = vec![
        (b"", 114),
        (b"\xff\xfe", 114),
        (b"null", 114),
        (b"[]", 114),
        (b"\"tcp\"", 114),
        (b"{\"time\":", 114),
        (b"{} trailing", 114),
        (deep.as_bytes(), 114),
        (deep_in_object.as_bytes(), 114),
        (br#"{"time":"10"}"#, 114),
        (br#"{"parallel":[1]}"#, 114),
        (br#"{"udp":"yes"}"#, 114),
        (br#"{"title":42}"#, 114),
        (br#"{"num":-5}"#, 114),
        (br#"{"bandwidth":1e400}"#, 114),
        (br#"{"time":-10}"#, 5),
        (br#"{"time":1e30}"#, 5),
        (br#"{"time":18446744073709551616}"#, 5),
        (br#"{"omit":-1}"#, 12),
        (br#"{"parallel":129}"#, 6),
        (br#"{"parallel":-1}"#, 6),
        (br#"{"len":-1}"#, 7),
        (br#"{"window":-1}"#, 8),
        (br#"{"TOS":-1}"#, 21),
    ];
    for (body, want) in cases {
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        let out = s.handle(clock.at(0.0), Event::Params(body.to_vec()));
        assert_eq!(
            out[0],
            Action::SendError(ErrorCode(want), 0),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert!(matches!(out[1], Action::Finish(Some(_))));
        assert_eq!(s.phase(), Phase::Finished);
    }
    // Missing keys are defaults, not errors.
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    assert_eq!(
        s.handle(clock.at(0.0), Event::Params(b"{}".to_vec())),
        vec![Action::Prepare]
    );
}

#[test]
fn bad_results_documents_get_their_codes() {
    let clock = Clock(Instant::now());
    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let cases: Vec<(Vec<u8>, i32)> = vec![
        (b"garbage".to_vec(), 117),
        (b"[]".to_vec(), 117),
        (deep.into_bytes(), 117),
        (
            RESULTS.replace("\"streams\"", "\"streamz\"").into_bytes(),
            117,
        ),
        (
            RESULTS
                .replace("\"bytes\":5", "\"bytes\":\"5\"")
                .into_bytes(),
            117,
        ),
        (RESULTS.replace("\"id\":3", "\"id\":9").into_bytes(), 208),
        (RESULTS.replace("\"id\":3", "\"id\":-3").into_bytes(), 208),
    ];
    for (body, want) in cases {
        let mut s = running(&clock);
        s.handle(clock.at(2.0), Event::StateByte(4));
        let out = s.handle(clock.at(2.0), Event::ClientResults(body));
        assert_eq!(out[0], Action::SendError(ErrorCode(want), 0));
        assert!(matches!(out[1], Action::Finish(Some(_))));
    }
}

#[test]
fn shutdown_while_running() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    let out = s.handle(
        clock.at(1.0),
        Event::Shutdown(errors::SERVER_TERMINATED_TERM),
    );
    assert_eq!(out[0], Action::EndTest);
    assert_eq!(out[1], Action::Send(State::ServerTerminate));
    assert!(matches!(out[2], Action::Finish(Some(_))));
}

#[test]
fn bad_results_are_reported() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    let out = s.handle(clock.at(2.0), Event::ClientResults(b"{}".to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));
    assert!(matches!(&out[1], Action::Finish(Some(_))));
}

/// A session in the data phase of `params`, its streams started at 0 s.
fn started(clock: &Clock, limits: Limits, policy: Policy, params: &[u8]) -> Session {
    let mut s = Session::new(clock.at(0.0), limits).with_policy(policy);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    assert_eq!(
        s.handle(clock.at(0.0), Event::Params(params.to_vec())),
        vec![Action::Prepare]
    );
    s.handle(clock.at(0.0), Event::Prepared);
    let want = s.params().map_or(1, TestParams::stream_count);
    for _ in 0..want {
        s.handle(clock.at(0.0), Event::StreamConnected);
    }
    assert_eq!(s.phase(), Phase::Running);
    assert_eq!(s.handle(clock.at(0.0), Event::Started), vec![]);
    s
}

/// Asserts that a data-phase tick sampled its interval and then failed
/// the test with `code` and the log text `text`.
fn assert_sampled_then_failed(out: &[Action], code: ErrorCode, text: &str) {
    let want = [
        Action::SampleInterval,
        Action::SendError(code, 0),
        Action::EndTest,
        Action::Finish(Some(text.to_string())),
    ];
    assert_eq!(out, want);
}

fn moved(received: u64, sent: u64) -> Event {
    Event::Tick(Counters {
        received,
        sent,
        ..Counters::default()
    })
}

#[test]
fn interval_ticks_keep_their_cadence() {
    let clock = Clock(Instant::now());
    let params = br#"{"tcp":true,"time":10}"#;
    let mut s = started(&clock, Limits::default(), Policy::default(), params);
    assert_eq!(s.deadline(), Some(clock.at(1.0)));
    // An early wake-up samples nothing.
    assert_eq!(s.handle(clock.at(0.5), moved(1, 0)), vec![]);
    assert_eq!(
        s.handle(clock.at(1.0), moved(2, 0)),
        vec![Action::SampleInterval]
    );
    // Handled late, the next tick stays on the grid: no drift.
    assert_eq!(s.deadline(), Some(clock.at(2.0)));
    assert_eq!(
        s.handle(clock.at(2.3), moved(3, 0)),
        vec![Action::SampleInterval]
    );
    assert_eq!(s.deadline(), Some(clock.at(3.0)));
    // Ticks missed entirely are skipped, not made up one after another.
    assert_eq!(
        s.handle(clock.at(5.5), moved(4, 0)),
        vec![Action::SampleInterval]
    );
    assert_eq!(s.deadline(), Some(clock.at(6.5)));
    // The end of the test stops them.
    s.handle(clock.at(6.0), Event::StateByte(4));
    assert!(!s.timers().is_armed(Timer::Interval));
}

#[test]
fn omit_ends_at_its_tick() {
    let clock = Clock(Instant::now());
    let params = br#"{"tcp":true,"time":5,"omit":2}"#;
    let mut s = started(&clock, Limits::default(), Policy::default(), params);
    assert_eq!(
        s.handle(clock.at(1.0), moved(1, 0)),
        vec![Action::SampleInterval]
    );
    // The tick at the omit end samples the last omitted interval first.
    assert_eq!(
        s.handle(clock.at(2.0), moved(2, 0)),
        vec![Action::SampleInterval, Action::EndOmit]
    );
    assert!(!s.timers().is_armed(Timer::OmitEnd));
    assert_eq!(
        s.handle(clock.at(3.0), moved(3, 0)),
        vec![Action::SampleInterval]
    );
    // The grace timer counts the omit period too: 5 + 2 + 40 s.
    assert_eq!(s.timers().get(Timer::Grace), Some(clock.at(47.0)));

    // A tick a little before the omit end still ends it.
    let mut s = started(&clock, Limits::default(), Policy::default(), params);
    s.handle(clock.at(1.0), moved(1, 0));
    s.timers.set(Timer::Interval, clock.at(1.97));
    assert_eq!(
        s.handle(clock.at(1.97), moved(2, 0)),
        vec![Action::SampleInterval, Action::EndOmit]
    );

    // Off the grid (ticks were skipped), the omit end wakes on its own and
    // the interval cadence stays as it was.
    let mut s = started(&clock, Limits::default(), Policy::default(), params);
    s.handle(clock.at(1.0), moved(1, 0));
    s.timers.set(Timer::Interval, clock.at(2.4));
    assert_eq!(s.deadline(), Some(clock.at(2.0)));
    assert_eq!(
        s.handle(clock.at(2.0), moved(2, 0)),
        vec![Action::SampleInterval, Action::EndOmit]
    );
    assert_eq!(s.timers().get(Timer::Interval), Some(clock.at(2.4)));
}

#[test]
fn the_bitrate_cap_is_judged_over_its_window() {
    let clock = Clock(Instant::now());
    let policy = Policy {
        bitrate_limit: Some("8M/2".parse().expect("a limit")),
        ..Policy::default()
    };
    let params = br#"{"tcp":true,"time":10}"#;
    let mut s = started(&clock, Limits::default(), policy.clone(), params);
    // 2 MB/s = 16 Mbit/s, but the 2 s window is not full after 1 s.
    assert_eq!(
        s.handle(clock.at(1.0), moved(2_000_000, 0)),
        vec![Action::SampleInterval]
    );
    let out = s.handle(clock.at(2.0), moved(4_000_000, 0));
    let text = "error - total required bandwidth is larger than server limit";
    assert_sampled_then_failed(&out, ErrorCode::TOTAL_RATE, text);

    // Both directions count; one fast second in a slow window is fine.
    let mut s = started(&clock, Limits::default(), policy, params);
    assert_eq!(
        s.handle(clock.at(1.0), moved(1_500_000, 0)),
        vec![Action::SampleInterval]
    );
    assert_eq!(
        s.handle(clock.at(2.0), moved(1_600_000, 100_000)),
        vec![Action::SampleInterval]
    );
    assert_eq!(
        s.handle(clock.at(3.0), moved(1_700_000, 200_000)),
        vec![Action::SampleInterval]
    );
}

#[test]
fn a_broken_stream_ends_the_test_one_tick_later() {
    let clock = Clock(Instant::now());
    let cases = [
        (
            br#"{"tcp":true,"time":10}"#.as_slice(),
            false,
            ErrorCode::STREAM_READ,
        ),
        (
            br#"{"tcp":true,"time":10,"reverse":true}"#.as_slice(),
            true,
            ErrorCode::STREAM_WRITE,
        ),
    ];
    for (params, sender, code) in cases {
        for os in [Some("Connection reset by peer".to_string()), None] {
            let mut s = started(&clock, Limits::default(), Policy::default(), params);
            let broken = Counters {
                broken: Some((sender, os.clone())),
                ..Counters::default()
            };
            // Seen between ticks: nothing yet.
            assert_eq!(s.handle(clock.at(0.5), Event::Tick(broken.clone())), vec![]);
            // First tick: noted, the client gets its chance to close first.
            assert_eq!(
                s.handle(clock.at(1.0), Event::Tick(broken.clone())),
                vec![Action::SampleInterval]
            );
            let out = s.handle(clock.at(2.0), Event::Tick(broken));
            let text = code.log_text(Some(os.as_deref().unwrap_or("")));
            assert_sampled_then_failed(&out, code, &text);
        }
    }
}

#[test]
fn a_paced_sender_is_not_stuck() {
    let clock = Clock(Instant::now());
    let limits = idle_after(3);
    let params = br#"{"tcp":true,"time":0,"num":1000000,"reverse":true,"bandwidth":1000}"#;
    let pacing = |sent| {
        Event::Tick(Counters {
            sent,
            pacing: true,
            ..Counters::default()
        })
    };
    // Nothing sent for 10 s, but the stream waits for its pacing: alive.
    let mut s = started(&clock, limits, Policy::default(), params);
    for t in 1..=10 {
        let out = s.handle(clock.at(f64::from(t)), pacing(0));
        assert_eq!(out, vec![Action::SampleInterval], "at {t} s");
    }
    // Every sender blocked in a write and nothing sent: stuck.
    let mut s = started(&clock, limits, Policy::default(), params);
    assert_eq!(
        s.handle(clock.at(1.0), moved(0, 10)),
        vec![Action::SampleInterval]
    );
    assert_eq!(s.timers().get(Timer::SendIdle), Some(clock.at(4.0)));
    assert_eq!(
        s.handle(clock.at(2.0), moved(0, 10)),
        vec![Action::SampleInterval]
    );
    assert_eq!(
        s.handle(clock.at(3.0), moved(0, 10)),
        vec![Action::SampleInterval]
    );
    let out = s.handle(clock.at(4.0), moved(0, 10));
    let text = "error - idle timeout for sending data";
    assert_sampled_then_failed(&out, ErrorCode::NO_MSG, text);
}

#[test]
fn idle_timeouts_per_direction() {
    let clock = Clock(Instant::now());
    let limits = idle_after(3);
    let bidir = br#"{"tcp":true,"time":0,"num":1000000,"bidirectional":true}"#;
    // Sending flows, receiving stalls: the receive rule fires.
    let mut s = started(&clock, limits, Policy::default(), bidir);
    let mut out = Vec::new();
    for t in 1..=3u32 {
        out = s.handle(clock.at(f64::from(t)), moved(0, u64::from(t)));
    }
    let text = "error - idle timeout for receiving data";
    assert_sampled_then_failed(&out, ErrorCode::NO_MSG, text);
    // Receiving flows, sending stalls: the send rule fires.
    let mut s = started(&clock, limits, Policy::default(), bidir);
    for t in 1..=3u32 {
        out = s.handle(clock.at(f64::from(t)), moved(u64::from(t), 0));
    }
    let text = "error - idle timeout for sending data";
    assert_sampled_then_failed(&out, ErrorCode::NO_MSG, text);
    // A receive-only test never judges its (absent) senders.
    let mut s = started(
        &clock,
        limits,
        Policy::default(),
        br#"{"tcp":true,"time":0,"num":9}"#,
    );
    assert!(!s.timers().is_armed(Timer::SendIdle));
    for t in 1..=10u32 {
        let out = s.handle(clock.at(f64::from(t)), moved(u64::from(t), 0));
        assert_eq!(out, vec![Action::SampleInterval]);
    }
}

#[test]
fn a_timed_test_is_cut_after_its_grace() {
    let clock = Clock(Instant::now());
    let params = br#"{"tcp":true,"time":2}"#;
    let mut s = started(&clock, Limits::default(), Policy::default(), params);
    for t in 1..42u32 {
        let out = s.handle(clock.at(f64::from(t)), moved(u64::from(t), 0));
        assert_eq!(out, vec![Action::SampleInterval]);
    }
    let out = s.handle(clock.at(42.0), moved(42, 0));
    let text = "error - server test duration expired";
    assert_sampled_then_failed(&out, ErrorCode::DURATION_EXPIRED, text);
}

#[test]
fn buffer_faults_by_socket_and_size() {
    let clock = Clock(Instant::now());
    let session = |params: &[u8]| {
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        s.handle(clock.at(0.0), Event::Params(params.to_vec()));
        s
    };
    let failed: Result<(u32, u32), String> = Err("Invalid argument".into());
    let fault = |code| Some(Event::Fault(code, Some("Invalid argument".into())));
    // Only an MSS asked for: the listener's failure is the MSS's.
    let s = session(br#"{"tcp":true,"MSS":1000}"#);
    assert_eq!(
        s.buffer_fault(&failed, BufferSocket::Listener),
        fault(ErrorCode::MSS)
    );
    assert_eq!(
        s.buffer_fault(&failed, BufferSocket::UdpStream),
        fault(ErrorCode::SET_BUF)
    );
    // A window (with or without an MSS): the buffer's.
    let s = session(br#"{"tcp":true,"MSS":1000,"window":65536}"#);
    assert_eq!(
        s.buffer_fault(&failed, BufferSocket::Listener),
        fault(ErrorCode::SET_BUF)
    );
    // Buffers smaller than the window asked for.
    let small = Ok((65536, 32768));
    assert_eq!(
        s.buffer_fault(&small, BufferSocket::Listener),
        Some(Event::Fault(ErrorCode::SET_BUF2, None))
    );
    assert_eq!(
        s.buffer_fault(&Ok((65536, 65536)), BufferSocket::UdpStream),
        None
    );
    // No window asked for: any size will do.
    let s = session(br#"{"tcp":true}"#);
    assert_eq!(s.buffer_fault(&Ok((1, 1)), BufferSocket::Listener), None);
}

#[test]
fn the_allow_list_refuses_other_clients() {
    let clock = Clock(Instant::now());
    let policy = Policy {
        allow: "10.0.0.0/8".parse().expect("a network"),
        ..Policy::default()
    };
    let mut s = Session::new(clock.at(0.0), Limits::default()).with_policy(policy.clone());
    let ip = "::ffff:10.1.2.3".parse().expect("an address");
    assert_eq!(s.handle(clock.at(0.0), Event::Connected(ip)), vec![]);
    assert_eq!(s.phase(), Phase::Cookie);

    let mut s = Session::new(clock.at(0.0), Limits::default()).with_policy(policy);
    let ip = "::ffff:192.0.2.1".parse().expect("an address");
    let out = s.handle(clock.at(0.0), Event::Connected(ip));
    assert_eq!(
        out[0],
        Action::Refused("client 192.0.2.1 is not in the allowed networks".into())
    );
    assert_eq!(out[1], Action::SendError(ErrorCode::AUTH_TEST, 0));
    assert_eq!(
        out[2],
        Action::Finish(Some(ErrorCode::AUTH_TEST.log_text(None)))
    );
    assert_eq!(s.phase(), Phase::Finished);
    assert_eq!(s.handle(clock.at(0.0), Event::Cookie(cookie())), vec![]);
}
