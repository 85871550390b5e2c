// webperf3 page: a speed-test run (an ndt7 result) in the detail view: the
// rate of each direction, the latency of each phase (idle, during the
// download, during the upload) with a small chart of latency over the run,
// the grade and what it means. detail.js puts it in place of the iperf3
// parts (intervals, the verdict), which an ndt7 run does not have.
//
// The chart's samples: the round trips the box timed on the run's latency
// socket (each subtest's `WebperfLatency.Samples`: [ms since it opened,
// phase, rtt ms]; in the download's entry and in `upload_entry`), else the
// round trip of each loading connection in its subtest's measurements
// (`TCPInfo.RTT`). Each phase's 90th percentile is the answer's `latency`.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { el, fmtNum, fmtRate } = W;

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const ms = (v) => (num(v) == null ? '—' : `${fmtNum(v, v < 10 ? 1 : 0)} ms`);
  const PHASES = [
    ['idle', 'Idle', '--muted'],
    ['download', 'During download', '--down'],
    ['upload', 'During upload', '--up'],
  ];

  /** Seconds between two ISO times, or null. */
  function between(from, to) {
    const a = Date.parse(from);
    const b = Date.parse(to);
    return Number.isFinite(a) && Number.isFinite(b) ? (b - a) / 1000 : null;
  }

  /** The run's latency samples as [{t (s into the run), rtt (ms), phase}]. */
  function samples(answer) {
    const docs = [answer?.entry, answer?.upload_entry].filter((d) => d && typeof d === 'object');
    const logged = (sub) => (Array.isArray(sub?.WebperfLatency?.Samples) ? sub.WebperfLatency.Samples : []);
    const timed = docs.flatMap((d) => [...logged(d.Download), ...logged(d.Upload)])
      .filter((x) => Array.isArray(x) && num(x[0]) != null && num(x[2]) != null)
      .map(([t, phase, rtt]) => ({ t: t / 1000, rtt, phase: String(phase) }));
    if (timed.length) return timed;
    // The box's view of each loading connection, from its measurements.
    const start = docs[0]?.StartTime;
    const out = [];
    for (const doc of docs) {
      for (const [key, phase] of [['Download', 'download'], ['Upload', 'upload']]) {
        const sub = doc[key];
        if (!sub || !Array.isArray(sub.ServerMeasurements)) continue;
        const offset = between(start, sub.StartTime) ?? 0;
        for (const m of sub.ServerMeasurements) {
          const t = num(m?.TCPInfo?.ElapsedTime ?? m?.AppInfo?.ElapsedTime);
          const rtt = num(m?.TCPInfo?.RTT);
          if (t != null && rtt != null && rtt > 0) out.push({ t: offset + t / 1e6, rtt: rtt / 1000, phase });
        }
      }
    }
    return out;
  }

  /** A phase's median with its 90th percentile where the answer has it. */
  function phaseText(median, stats) {
    if (num(median) == null) return '—';
    const p90 = num(stats?.p90_ms);
    return p90 != null && p90 > median ? `${ms(median)} (9 in 10 under ${ms(p90)})` : ms(median);
  }

  /** A tile as on the speed-test screen. */
  function tile(cls, label, value, unit, sub) {
    return el('li', { class: `tile ${cls}` },
      el('span', { class: 'tile-label', text: label }),
      el('span', { class: 'tile-value' }, el('span', { text: value }), ' ', el('span', { class: 'tile-unit', text: unit })),
      el('span', { class: 'tile-sub', text: sub }));
  }

  const mbits = (bps) => (num(bps) == null ? '—' : fmtRate(bps).replace(/ .*/, ''));
  const unit = (bps) => (num(bps) == null ? '' : fmtRate(bps).replace(/^\S+ /, ''));

  /** The grade, what it means, what the line is good for. */
  function gradePart(result) {
    const grade = typeof result.grade === 'string' ? result.grade : null;
    const badge = el('span', { class: 'grade', text: grade || '–' });
    badge.dataset.grade = grade ? grade.replace('+', 'plus') : '';
    badge.id = 'run-grade';
    const meaning = grade
      ? [W.grade.gradeMeaning(grade), W.grade.riseText(result)].filter(Boolean).join(' ')
      : 'Latency under load was not measured in this run, so it has no grade.';
    const goodFor = W.grade.goodForText(result.good_for);
    return el('div', { class: 'run-grade' },
      el('p', { class: 'st-grade' }, badge,
        el('span', { class: 'st-verdict' },
          el('strong', { text: grade ? `Responsiveness grade ${grade}` : 'No grade' }),
          el('span', { class: 'st-meaning', text: meaning }))),
      goodFor ? el('p', { class: 'st-goodfor', text: goodFor }) : null);
  }

  /** The latency chart, or null without samples (never an empty chart). */
  function chartPart(points) {
    if (points.length === 0) return null;
    const canvas = el('canvas', { class: 'detail-chart run-chart' });
    canvas.id = 'run-chart';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', 'Latency over the run, per phase (the figures above are the medians)');
    const legendBox = el('div', { class: 'legend' });
    const figure = el('figure', { class: 'chart' }, el('figcaption', { text: 'Latency over the run' }), canvas, legendBox);
    const draw = () => {
      const series = PHASES.map(([phase, label, color]) => ({
        label,
        color: W.cssVar(color),
        line: false,
        points: points.filter((p) => p.phase === phase).map((p) => ({ x: p.t, y: p.rtt })),
      })).filter((s) => s.points.length);
      W.chart.draw(canvas, { kind: 'seconds', series, format: (v) => `${fmtNum(v, v < 10 ? 1 : 0)} ms` });
      W.chart.legend(legendBox, series);
    };
    return { figure, draw };
  }

  /** The run's part of the detail view: {part, draw}. */
  function part(result, answer) {
    const loaded = [result.latency_down_ms, result.latency_up_ms].map(num).filter((v) => v != null);
    const tiles = el('ul', { class: 'st-tiles' },
      tile('down', 'Download', mbits(result.send_bps), unit(result.send_bps), 'box → client'),
      tile('up', 'Upload', mbits(result.receive_bps), unit(result.receive_bps), 'client → box'),
      tile('lat', 'Latency', num(result.latency_idle_ms) == null ? '—' : fmtNum(result.latency_idle_ms, result.latency_idle_ms < 10 ? 1 : 0), 'ms',
        loaded.length ? `idle · ${ms(Math.max(...loaded))} under load` : 'while idle'));
    tiles.setAttribute('aria-label', 'Results');
    const stats = answer?.latency || {};
    const phases = W.detail.facts([
      ['Latency while idle', phaseText(result.latency_idle_ms, stats.idle)],
      ['Jitter while idle', num(result.jitter_ms) == null ? null : ms(result.jitter_ms)],
      ['Latency during download', phaseText(result.latency_down_ms, stats.download)],
      ['Latency during upload', phaseText(result.latency_up_ms, stats.upload)],
    ]);
    const chart = chartPart(samples(answer));
    const box = el('section', { class: 'card detail-part run' },
      el('h3', { text: 'Speed test run' }), tiles, gradePart(result),
      el('h3', { text: 'Latency in each phase' }), phases, chart ? chart.figure : null);
    box.id = 'run';
    return { part: box, draw: () => chart?.draw() };
  }

  W.run = { part, samples };
})();
