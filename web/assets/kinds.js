// webperf3 page: the chart that answers "has my speed changed?". Each kind
// of test is its own series, never averaged with another: TCP capacity
// tests (iperf3 TCP), UDP tests paced at the bitrate their client asked
// for, and browser tests (ndt7). Per time bucket the line is the median
// where the server gives one (else the mean), the band the middle half
// (else lowest to highest) drawn faint, and the line stops where there
// were no tests.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { fmtDate } = W;

  /** The kinds of test, with the protocol filter that selects each and its line. */
  const KINDS = [
    { kind: 'tcp', protocol: 'TCP', label: 'TCP', pattern: [], dash: false, dot: false },
    { kind: 'udp', protocol: 'UDP', label: 'UDP paced', pattern: [7, 4], dash: true, dot: false },
    { kind: 'ndt7', protocol: 'ndt7', label: 'browser', pattern: [2, 3], dash: false, dot: true },
  ];

  /** The kinds `filters` allow: one when a protocol is chosen. */
  function kindsOf(filters) {
    const p = (filters.protocol || '').toLowerCase();
    return p ? KINDS.filter((k) => k.protocol.toLowerCase() === p) : KINDS;
  }

  /** Buckets of each kind matching `filters`: `[{kind, list}]`; for a
   *  server without the bucket route, made from `rows()` (the page held). */
  async function load(filters, count, rows) {
    const kinds = kindsOf(filters);
    try {
      return await Promise.all(kinds.map(async (k) => ({
        ...k, list: await W.api.buckets({ ...filters, protocol: k.protocol }, count),
      })));
    } catch (err) {
      if (err.status !== 404) throw err;
      return kinds.map((k) => ({
        ...k,
        list: W.api.bucketsOf(rows().filter((r) => (r.protocol || '').toLowerCase() === k.protocol.toLowerCase()), count),
      }));
    }
  }

  /** The middle of a list of numbers. */
  function middle(values) {
    const v = values.filter(Number.isFinite).sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)] : 0;
  }

  /** The chart's series: per kind with data, download and upload. */
  function series(sets) {
    const up = W.cssVar('--up');
    const down = W.cssVar('--down');
    const out = [];
    for (const set of sets || []) {
      const widths = set.list.map((b) => b.t1 - b.t0);
      const gap = middle(widths) * 1.5 || undefined;
      const pick = (dir) => set.list.filter((b) => b[dir]).map((b) => ({
        x: (b.t0 + b.t1) / 2, y: b[dir].mean, lo: b[dir].min, hi: b[dir].max, n: b.count, b,
      }));
      for (const [dir, word, color] of [['down', 'Download', down], ['up', 'Upload', up]]) {
        const points = pick(dir);
        if (points.length === 0) continue;
        out.push({
          label: `${word} · ${set.label}`, color, pattern: set.pattern, dash: set.dash, dot: set.dot,
          band: 0.07, gap, points,
        });
      }
    }
    return out;
  }

  /** Draws `sets` on `canvas`, its keys in `legendBox`, its title `what (N)`;
   *  `range` ([x0, x1], optional) the span shown whole. */
  function draw(canvas, legendBox, title, what, sets, range) {
    const total = (sets || []).reduce((n, s) => n + s.list.reduce((m, b) => m + b.count, 0), 0);
    title.textContent = sets ? `${what} (${total} test${total === 1 ? '' : 's'})` : `${what} (loading…)`;
    const list = series(sets);
    const tipTitle = (p) => (p.b && p.b.t1 - p.b.t0 > 90
      ? `${fmtDate(p.b.t0)} – ${fmtDate(p.b.t1)}`
      : fmtDate(p.x));
    W.chart.draw(canvas, {
      kind: 'time', series: list, tipTitle, range, empty: sets ? 'No results to plot.' : 'Loading…',
    });
    W.chart.legend(legendBox, list);
  }

  W.kindChart = { load, draw, series, KINDS };
})();
