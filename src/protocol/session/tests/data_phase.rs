//! The data-phase rules the session decides from ticks and deadlines.

use super::*;

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
