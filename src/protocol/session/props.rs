use super::*;
use crate::protocol::wire::COOKIE_LEN;
use crate::testing::config;
use proptest::prelude::*;

const PARAMS: &[&[u8]] = &[
    br#"{"tcp":true,"time":2,"parallel":2}"#,
    br#"{"tcp":true,"time":0,"num":1000,"reverse":true}"#,
    br#"{"udp":true,"time":1,"bidirectional":true,"len":1400}"#,
    br#"{}"#,
    br#"{"parallel":500}"#,
    b"garbage",
];
const RESULTS: &[&[u8]] = &[
    br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{"id":1,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#,
    br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[]}"#,
    br#"{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":0,"streams":[{"id":7,"bytes":5,"retransmits":0,"jitter":0,"errors":0,"packets":0}]}"#,
    b"{}",
    b"\xff",
];

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => any::<u8>().prop_map(|b| Event::Cookie(Cookie([b; COOKIE_LEN]))),
        1 => proptest::sample::select(PARAMS).prop_map(|p| Event::Params(p.to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Event::Params),
        1 => Just(Event::ReadStarted),
        1 => proptest::option::of(Just(String::from("Connection reset by peer")))
            .prop_map(Event::ReadFailed),
        1 => Just(Event::Prepared),
        3 => Just(Event::StreamConnected),
        3 => any::<u8>().prop_map(Event::StateByte),
        3 => proptest::sample::select(&[1u8, 4, 12, 16][..]).prop_map(Event::StateByte),
        1 => Just(Event::Eof),
        1 => proptest::sample::select(RESULTS).prop_map(|r| Event::ClientResults(r.to_vec())),
        1 => Just(Event::Started),
        1 => counters().prop_map(Event::Tick),
        2 => Just(Event::Tick(Counters::default())),
        1 => proptest::sample::select(&["10.0.0.1", "::1", "192.0.2.7"][..])
            .prop_map(|ip| Event::Connected(ip.parse().expect("an address"))),
        1 => Just(Event::Fault(ErrorCode::STREAM_ACCEPT, None)),
        1 => Just(Event::Shutdown(errors::SERVER_TERMINATED_TERM)),
    ]
}

fn counters() -> impl Strategy<Value = Counters> {
    (
        0u64..1 << 40,
        0u64..1 << 40,
        any::<bool>(),
        proptest::option::of((
            any::<bool>(),
            proptest::option::of(Just("Broken pipe".to_string())),
        )),
    )
        .prop_map(|(received, sent, pacing, broken)| Counters {
            received,
            sent,
            pacing,
            broken,
        })
}

/// Events with the milliseconds that passed before each.
fn events() -> impl Strategy<Value = Vec<(u32, Event)>> {
    proptest::collection::vec((0u32..200_000, event()), 0..40)
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn any_event_sequence_ends_cleanly(seq in events()) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut s = Session::new(now, Limits::default());
        let mut finishes = 0;
        let mut ends = 0;
        let mut feed = |s: &mut Session, now: Instant, ev: Event| -> Result<(), TestCaseError> {
            let was_finished = s.phase() == Phase::Finished;
            let out = s.handle(now, ev);
            if was_finished {
                prop_assert!(out.is_empty(), "actions after Finished: {:?}", out);
            }
            for (i, a) in out.iter().enumerate() {
                match a {
                    Action::Finish(_) => {
                        finishes += 1;
                        prop_assert_eq!(i, out.len() - 1, "Finish is the last action");
                        prop_assert_eq!(s.phase(), Phase::Finished);
                    }
                    Action::EndTest => ends += 1,
                    Action::SendError(..) => {
                        prop_assert!(matches!(out.last(), Some(Action::Finish(Some(_)))));
                    }
                    _ => {}
                }
            }
            prop_assert!(finishes <= 1 && ends <= 1);
            let idle = matches!(s.phase(), Phase::Preparing | Phase::Finished);
            prop_assert_eq!(s.deadline().is_none(), idle);
            prop_assert_eq!(s.expect() == Expect::Nothing, idle);
            if let Some(d) = s.deadline() {
                prop_assert!(d >= t0);
            }
            Ok(())
        };
        for (ms, ev) in seq {
            now += Duration::from_millis(u64::from(ms));
            feed(&mut s, now, ev)?;
        }
        feed(&mut s, now, Event::Eof)?;
        prop_assert_eq!(s.phase(), Phase::Finished);
        prop_assert_eq!(finishes, 1);
        prop_assert_eq!(s.deadline(), None);
    }

    /// Whatever the client does, waiting out each deadline ends the
    /// session within a bounded number of wake-ups (in the data phase the
    /// interval timer wakes the driver every second; the idle limit ends
    /// a session where nothing moves within 120 of them).
    #[test]
    fn deadlines_alone_end_every_session(seq in events()) {
        let mut now = Instant::now();
        let mut s = Session::new(now, Limits::default());
        for (ms, ev) in seq {
            now += Duration::from_millis(u64::from(ms));
            s.handle(now, ev);
        }
        for _ in 0..200 {
            match s.phase() {
                Phase::Finished => break,
                // The driver answers Prepare at once.
                Phase::Preparing => { s.handle(now, Event::Prepared); }
                _ => {
                    now = s.deadline().expect("a waiting phase has a deadline").max(now);
                    s.handle(now, Event::Tick(Counters::default()));
                }
            }
        }
        prop_assert_eq!(s.phase(), Phase::Finished);
    }
}
