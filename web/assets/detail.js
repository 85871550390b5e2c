// webperf3 page: one test in detail, at `#/test/<id>` (a link to share).
// What the server says about the test (`GET /api/results/<id>`: the result,
// its log entry as logged, the verdict): who, when, how; what limited it
// and why; the rate of each direction per interval as a chart and as a
// table; each stream; TCP retransmits, RTT and cwnd where logged; UDP loss
// and jitter; the client's own figures; the machine's health.
//
// The log entry is stock iperf3's server JSON (protocol reference,
// Appendix A): the server's view, so a stream with `sender: true` carried
// the download (server to client), the others the upload. A probe's entry
// is the client's JSON (it names `connecting_to`): the box's view, so
// there `sender: true` is the upload (box to target).
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { $, el, fmtRate, fmtBytes, fmtNum, fmtDateSeconds, fmtAgo, fmtSeconds } = W;

  const VERDICTS = {
    'bitrate-target': 'the bitrate the client asked for (-b)',
    'server-cpu': 'the server’s CPU',
    'client-cpu': 'this box’s CPU (the client of its probe)',
    'pi-throttled': 'the Pi throttling (temperature or power)',
    'receive-window': 'the receiver’s TCP window',
    'send-buffer': 'the server’s send buffer',
    network: 'the network (retransmits or loss)',
  };

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

  /** Which way a sum or stream went: down is towards the client of the
   *  test (the box, for a probe, whose entry is the client's view). */
  const direction = (s, reverse, asClient) => {
    const sent = s.sender ?? (reverse !== asClient);
    return sent !== asClient ? 'down' : 'up';
  };
  const DIR_NAME = { up: 'Upload', down: 'Download' };

  /** The entry's intervals as rows: per direction its sum and its streams. */
  function intervalsOf(entry) {
    const reverse = Boolean(entry?.start?.test_start?.reverse);
    const asClient = entry?.start?.connecting_to != null;
    const list = Array.isArray(entry?.intervals) ? entry.intervals : [];
    return list.map((iv) => {
      const sums = [iv.sum, iv.sum_bidir_reverse].filter((s) => s && typeof s === 'object');
      const row = { start: null, end: null, up: null, down: null, streams: [] };
      for (const s of sums) {
        row[direction(s, reverse, asClient)] = s;
        row.start = row.start ?? num(s.start);
        row.end = row.end ?? num(s.end);
      }
      for (const st of Array.isArray(iv.streams) ? iv.streams : []) {
        if (st && typeof st === 'object') row.streams.push({ ...st, dir: direction(st, reverse, asClient) });
      }
      return row;
    });
  }

  /** The mean of the numbers among `values`, or null. */
  function mean(values) {
    const nums = values.filter((v) => num(v) != null);
    return nums.length ? nums.reduce((a, b) => a + b, 0) / nums.length : null;
  }

  /** The sum of the numbers among `values`, or null. */
  function total(values) {
    const nums = values.filter((v) => num(v) != null);
    return nums.length ? nums.reduce((a, b) => a + b, 0) : null;
  }

  const fmtRtt = (us) => (num(us) == null ? '—' : `${fmtNum(us / 1000, 2)} ms`);
  const fmtPct = (v) => (num(v) == null ? '—' : `${fmtNum(v, 2)} %`);
  const fmtJitter = (ms) => (num(ms) == null ? '—' : `${fmtNum(ms, 3)} ms`);
  const fmtSpan = (a, b) => `${fmtNum(a, 2)}–${fmtNum(b, 2)} s`;

  /** The columns an interval table has, from what the rows hold. */
  function columns(rows, dirs) {
    const cols = [];
    const some = (f) => rows.some(f);
    for (const dir of dirs) {
      const cls = dir === 'up' ? 'rate-up' : 'rate-down';
      cols.push({ head: DIR_NAME[dir], cls, get: (r) => fmtRate(num(r[dir]?.bits_per_second)) });
      if (some((r) => num(r[dir]?.retransmits) != null)) {
        cols.push({ head: `Retransmits (${DIR_NAME[dir].toLowerCase()})`, get: (r) => fmtNum(num(r[dir]?.retransmits), 0) });
      }
      if (some((r) => num(r[dir]?.lost_percent) != null)) {
        cols.push({ head: `Loss (${DIR_NAME[dir].toLowerCase()})`, get: (r) => lossText(r[dir]) });
        cols.push({ head: `Jitter (${DIR_NAME[dir].toLowerCase()})`, get: (r) => fmtJitter(num(r[dir]?.jitter_ms)) });
      }
    }
    if (some((r) => r.streams.some((s) => num(s.rtt) != null))) {
      cols.push({ head: 'RTT', get: (r) => fmtRtt(mean(r.streams.map((s) => s.rtt))) });
    }
    if (some((r) => r.streams.some((s) => num(s.snd_cwnd) != null))) {
      cols.push({ head: 'cwnd', get: (r) => fmtBytes(total(r.streams.map((s) => s.snd_cwnd))) });
    }
    return cols;
  }

  function lossText(s) {
    if (!s || num(s.lost_percent) == null) return '—';
    const of = num(s.packets) != null ? ` (${s.lost_packets ?? 0}/${s.packets})` : '';
    return `${fmtPct(s.lost_percent)}${of}`;
  }

  /** An accessible table: a caption, `<th scope=col>` heads, one row per
   *  item whose first cell is its `<th scope=row>`. */
  function table(caption, head, cols, items, rowHead, attrs) {
    const t = el('table', { class: 'grid', ...attrs },
      el('caption', { text: caption }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', text: head }),
        ...cols.map((c) => el('th', { scope: 'col', class: 'num', text: c.head })))),
      el('tbody', null, ...items.map((item) => el('tr', null,
        el('th', { scope: 'row', text: rowHead(item) }),
        ...cols.map((c) => el('td', { class: `num ${c.cls || ''}`, text: c.get(item) }))))));
    return el('div', { class: 'scroll' }, t);
  }

  /** The per-interval chart: one series per direction. */
  function drawIntervals(canvas, rows, dirs) {
    const color = { up: W.cssVar('--up'), down: W.cssVar('--down') };
    // Each interval is a flat step from its start to its end.
    const series = dirs.map((dir) => ({
      label: DIR_NAME[dir],
      color: color[dir],
      dots: false,
      points: rows.filter((r) => r[dir] && num(r[dir].bits_per_second) != null)
        .flatMap((r) => [
          { x: num(r[dir].start) ?? r.start, y: r[dir].bits_per_second, r },
          { x: (num(r[dir].end) ?? r.end) - 1e-6, y: r[dir].bits_per_second, r },
        ]),
    }));
    W.chart.draw(canvas, {
      kind: 'seconds',
      series,
      empty: 'No intervals were logged for this test.',
      tipTitle: (p) => (p.r ? `Interval ${fmtSpan(p.r.start, p.r.end)}` : `${fmtNum(p.x, 1)} s`),
    });
    return series;
  }

  /** A `<dl>` of [term, value] pairs, skipping empty values. */
  function facts(pairs, cls) {
    const dl = el('dl', { class: `facts ${cls || ''}` });
    for (const [term, value] of pairs) {
      if (value == null || value === '') continue;
      dl.append(el('div', null, el('dt', { text: term }), el('dd', { text: value })));
    }
    return dl;
  }

  function section(title, ...children) {
    return el('section', { class: 'card detail-part' }, el('h3', { text: title }), ...children);
  }

  /** Who, when, how. */
  function header(result, verdict, id) {
    const run = result.protocol === 'ndt7'; // a speed-test run: both directions, no iperf3 options
    const dirs = run ? null : result.bidir ? 'upload and download (--bidir)' : result.reverse ? 'download (-R)' : 'upload';
    const url = `${location.origin}${location.pathname}${W.testHref(id)}`;
    const link = el('input', { class: 'share-url' });
    link.readOnly = true;
    link.value = url;
    link.setAttribute('aria-label', 'Link to this test');
    const copied = el('span', { class: 'hint copied', text: '' });
    copied.setAttribute('role', 'status');
    const copy = el('button', { class: 'button', text: 'Copy link' });
    copy.type = 'button';
    copy.id = 'copy-link';
    copy.addEventListener('click', async () => {
      try {
        if (!navigator.clipboard) throw new Error('no clipboard');
        await navigator.clipboard.writeText(url);
      } catch {
        link.select();
        document.execCommand?.('copy');
      }
      copied.textContent = 'Copied.';
    });
    const name = el('h2', { class: 'detail-name', text: result.name || (run ? 'Speed test' : 'unnamed test') });
    name.id = 'detail-name';
    const headline = result.headline || fallbackHeadline(result, verdict);
    return el('section', { class: 'card' },
      el('div', { class: 'section-head' },
        name,
        el('a', { class: 'button', href: '#/', text: '← Results' })),
      W.bigRates(result),
      headline ? el('p', { class: 'headline', id: 'detail-headline', text: headline }) : null,
      run ? null : loadedLatency(result),
      result.title ? el('p', { class: 'detail-title', text: result.title }) : null,
      result.error ? el('p', { class: 'banner', text: result.error }) : null,
      facts([
        ['When', `${fmtDateSeconds(result.timestamp)} (${fmtAgo(result.timestamp)})`],
        ['Device', result.name || null],
        ['Client', result.kind === 'probe' ? 'this box (a probe)' : result.client],
        ['Target', result.target],
        ['Test', [result.protocol, dirs, result.streams > 1 ? `${result.streams} streams` : null, fmtSeconds(result.duration)].filter(Boolean).join(', ')],
      ]),
      el('div', { class: 'share' }, link, copy, copied));
  }

  /** The figures an expert looks for, behind "Details". */
  function figuresPart(result, entry, ours) {
    const start = entry?.start || {};
    const ts = start.test_start || {};
    const congestion = entry?.end?.sender_tcp_congestion || entry?.end?.receiver_tcp_congestion
      || (typeof ours?.client_results?.congestion_used === 'string' ? ours.client_results.congestion_used : null);
    return section('The test', facts([
      ['Port', result.kind === 'probe' ? null : String(result.port)],
      ['Streams', String(result.streams ?? ts.num_streams ?? 1)],
      ['Target bitrate', num(ts.target_bitrate) ? fmtRate(ts.target_bitrate) : null],
      ['Block size', num(ts.blksize) != null ? fmtBytes(ts.blksize) : null],
      ['TCP MSS', num(start.tcp_mss_default) > 0 ? `${start.tcp_mss_default} B` : null],
      ['Congestion control', congestion],
      ['UDP loss / jitter', result.protocol === 'UDP' ? W.fmtUdp(result) : null],
      ['TCP retransmits', result.retransmits != null ? String(result.retransmits) : null],
      ['Minimum RTT', num(result.min_rtt_ms) != null ? `${fmtNum(result.min_rtt_ms, 2)} ms` : null],
      ['Link speed of this box', num(result.link_bps) ? fmtRate(result.link_bps) : null],
    ]));
  }

  /** An iperf3 test's latency under load, its rise over the test's
   *  quickest round trip and the grade, in words; null without the data. */
  function loadedLatency(result) {
    const loaded = [result.latency_down_ms, result.latency_up_ms].filter((v) => typeof v === 'number');
    if (loaded.length === 0 || !result.grade) return null;
    const worst = Math.max(...loaded);
    const base = typeof result.min_rtt_ms === 'number' ? result.min_rtt_ms : null;
    const ms = (v) => `${fmtNum(v, v < 1 ? 2 : v < 10 ? 1 : 0)} ms`;
    const rise = base == null ? '' : `, ${ms(Math.max(0, worst - base))} more than its quickest round trip (${ms(base)})`;
    return el('p', { class: 'detail-latency', id: 'detail-latency',
      text: `Latency while data flowed: ${ms(worst)}${rise}. Grade ${result.grade}: ${W.grade.gradeMeaning(result.grade)}` });
  }

  /** A plain sentence from the verdict, for a server that gives no headline. */
  function fallbackHeadline(result, verdict) {
    const rates = [
      result.send_bps != null ? `received ${fmtRate(result.send_bps)}` : null,
      result.receive_bps != null ? `sent ${fmtRate(result.receive_bps)}` : null,
    ].filter(Boolean).join(' and ');
    if (!rates) return null;
    const who = result.name || 'The device';
    const limit = verdict?.limited_by && VERDICTS[verdict.limited_by] ? ` Most likely limited by ${VERDICTS[verdict.limited_by]}.` : '';
    return `${who} ${rates}.${limit}`;
  }

  function verdictPart(verdict) {
    if (!verdict || !verdict.limited_by) return null;
    const what = VERDICTS[verdict.limited_by] || verdict.limited_by;
    const head = verdict.limited_by === 'unknown'
      ? el('p', { class: 'verdict', data: { limitedBy: 'unknown' }, text: 'The evidence the server has points to no single limit.' })
      : el('p', { class: 'verdict', data: { limitedBy: verdict.limited_by } },
        'Most likely limited by ', el('strong', { text: what }), '.');
    const evidence = Array.isArray(verdict.evidence) ? verdict.evidence : [];
    return section('What limited it', head,
      evidence.length ? el('ul', { class: 'evidence' }, ...evidence.map((e) => el('li', { text: String(e) }))) : null);
  }

  function intervalsPart(entry) {
    const rows = intervalsOf(entry);
    const dirs = ['up', 'down'].filter((d) => rows.some((r) => r[d]));
    const canvas = el('canvas', { class: 'detail-chart' });
    canvas.id = 'detail-chart';
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', 'Rate per interval (the table below has the numbers)');
    const legendBox = el('div', { class: 'legend' });
    const figure = el('figure', { class: 'chart' }, el('figcaption', { text: 'Rate per interval' }), canvas, legendBox);
    const cols = columns(rows, dirs);
    const intervals = table('Each interval (all streams)', 'Interval', cols, rows,
      (r) => fmtSpan(r.start, r.end), { data: { rows: rows.length } });
    intervals.firstChild.id = 'detail-intervals';
    const part = section('Each interval', figure, intervals);
    const draw = () => W.chart.legend(legendBox, drawIntervals(canvas, rows, dirs));
    return { part, draw, streams: streamsPart(rows) };
  }

  /** Per stream: one table each, in a disclosure (a -P 128 test has many). */
  function streamsPart(rows) {
    const ids = [];
    for (const r of rows) for (const s of r.streams) if (!ids.some((x) => x.id === s.socket && x.dir === s.dir)) ids.push({ id: s.socket, dir: s.dir });
    if (ids.length < 2) return null;
    const tables = ids.slice(0, 128).map(({ id, dir }) => {
      const items = rows.map((r) => ({ r, s: r.streams.find((s) => s.socket === id && s.dir === dir) })).filter((x) => x.s);
      const cols = [{ head: 'Rate', cls: dir === 'up' ? 'rate-up' : 'rate-down', get: (x) => fmtRate(num(x.s.bits_per_second)) }];
      const has = (k) => items.some((x) => num(x.s[k]) != null);
      if (has('retransmits')) cols.push({ head: 'Retransmits', get: (x) => fmtNum(num(x.s.retransmits), 0) });
      if (has('rtt')) cols.push({ head: 'RTT', get: (x) => fmtRtt(x.s.rtt) });
      if (has('snd_cwnd')) cols.push({ head: 'cwnd', get: (x) => fmtBytes(num(x.s.snd_cwnd)) });
      if (has('lost_percent')) cols.push({ head: 'Loss', get: (x) => lossText(x.s) });
      if (has('jitter_ms')) cols.push({ head: 'Jitter', get: (x) => fmtJitter(num(x.s.jitter_ms)) });
      return table(`Stream ${id} (${DIR_NAME[dir].toLowerCase()})`, 'Interval', cols, items, (x) => fmtSpan(x.r.start, x.r.end));
    });
    return el('details', { class: 'streams' }, el('summary', { text: `Each stream (${ids.length})` }), ...tables);
  }

  /** The client's own figures, from the results it sent the server. */
  function clientPart(ours) {
    const doc = ours?.client_results;
    if (!doc || typeof doc !== 'object') return null;
    const streams = Array.isArray(doc.streams) ? doc.streams : [];
    const cols = [
      { head: 'Bytes', get: (s) => fmtBytes(num(s.bytes)) },
      { head: 'Rate', get: (s) => {
        const secs = num(s.end_time) != null && num(s.start_time) != null ? s.end_time - s.start_time : null;
        return secs > 0 && num(s.bytes) != null ? fmtRate((s.bytes * 8) / secs) : '—';
      } },
    ];
    // -1 (or its unsigned twin) is iperf3's "not counted".
    const counted = (v) => (num(v) != null && v >= 0 && v <= Number.MAX_SAFE_INTEGER ? v : null);
    if (streams.some((s) => counted(s.retransmits) != null)) cols.push({ head: 'Retransmits', get: (s) => fmtNum(counted(s.retransmits), 0) });
    if (streams.some((s) => num(s.jitter) > 0)) cols.push({ head: 'Jitter', get: (s) => fmtJitter(num(s.jitter) != null ? s.jitter * 1000 : null) });
    if (streams.some((s) => num(s.packets) > 0)) {
      cols.push({ head: 'Lost / packets', get: (s) => `${s.errors ?? 0} / ${s.packets ?? 0}` });
    }
    return section('The client’s own figures',
      facts([
        ['Client CPU', num(doc.cpu_util_total) != null ? `${fmtNum(doc.cpu_util_total, 1)} %` : null],
        ['Client version', typeof ours.client_version === 'string' ? ours.client_version : null],
      ]),
      streams.length ? table('Per stream, as the client counted', 'Stream', cols, streams, (s) => String(s.id ?? '?')) : null);
  }

  /** The machine's health during the test, and what else ran. */
  function healthPart(result, entry, ours) {
    const h = ours?.health || {};
    const cpu = entry?.end?.cpu_utilization_percent || {};
    const during = Array.isArray(h.throttled_during) ? h.throttled_during.join(', ') : null;
    const pairs = [
      ['Server CPU', num(h.server_cpu_percent ?? result.server_cpu_percent) != null ? `${fmtNum(h.server_cpu_percent ?? result.server_cpu_percent, 1)} %` : null],
      ['Server CPU (iperf3’s count)', num(cpu.host_total) != null ? `${fmtNum(cpu.host_total, 1)} %` : null],
      ['Client CPU (iperf3’s count)', num(cpu.remote_total) > 0 ? `${fmtNum(cpu.remote_total, 1)} %` : null],
      ['CPU temperature', num(h.cpu_temp_c) != null ? `${fmtNum(h.cpu_temp_c, 1)} °C` : null],
      ['Hottest during the test', num(h.cpu_temp_max_c) != null ? `${fmtNum(h.cpu_temp_max_c, 1)} °C` : null],
      ['Throttling', during || (typeof h.throttled === 'string' ? h.throttled : null)],
      ['Overlapped another test', typeof ours?.overlapped === 'boolean' ? (ours.overlapped ? 'yes' : 'no') : null],
    ];
    if (pairs.every(([, v]) => v == null)) return null;
    return section('The machine during the test', facts(pairs));
  }

  /** A value as one line: `key: value · key: value` for a flat object. */
  function flat(v) {
    if (v && typeof v === 'object' && !Array.isArray(v)
      && Object.values(v).every((x) => x == null || typeof x !== 'object')) {
      return Object.entries(v).map(([k, x]) => `${k.replace(/_/g, ' ')}: ${x}`).join(' · ');
    }
    return JSON.stringify(v);
  }

  /** Whatever else the server logged under its own key, as text. */
  function morePart(ours) {
    if (!ours || typeof ours !== 'object') return null;
    const known = new Set(['client_results', 'health', 'overlapped', 'client_version']);
    const pairs = Object.entries(ours).filter(([k]) => !known.has(k)).map(([k, v]) => {
      const text = typeof v === 'string' ? v : flat(v);
      return [k.replace(/_/g, ' '), text];
    });
    if (pairs.length === 0) return null;
    return section('More from the server', facts(pairs, 'more'));
  }

  let shown = null; // the id on screen
  let drawDetail = null;

  /** The log entry as logged, whole, drawn when first opened. */
  function rawPart(entry) {
    if (!entry) return null;
    const pre = el('pre', { class: 'raw' });
    const box = el('details', { class: 'streams raw-entry' }, el('summary', { text: 'The log entry, as logged' }), pre);
    box.addEventListener('toggle', () => {
      if (box.open && !pre.textContent) pre.textContent = JSON.stringify(entry, null, 2);
    });
    return box;
  }

  function render(box, id, answer) {
    const { result, entry, verdict } = answer;
    const ours = entry && typeof entry.webperf3 === 'object' ? entry.webperf3 : null;
    // A speed-test run has no iperf3 intervals or verdict: its own part.
    const runView = result.protocol === 'ndt7';
    const intervals = runView ? W.run.part(result, answer) : intervalsPart(entry);
    const details = el('details', { class: 'card more-details', id: 'detail-more' },
      el('summary', { text: 'Details: what limited it, CPU, streams, the log entry' }),
      el('div', { class: 'detail' },
        runView ? null : verdictPart(verdict),
        figuresPart(result, entry, ours),
        intervals.streams ? section('Each stream', intervals.streams) : null,
        clientPart(ours),
        healthPart(result, entry, ours),
        morePart(ours),
        rawPart(entry)));
    box.replaceChildren(header(result, verdict, id), intervals.part, details);
    drawDetail = intervals.draw;
    drawDetail();
    W.noteScrolling(box);
    for (const d of box.querySelectorAll('details')) d.addEventListener('toggle', () => W.noteScrolling(d));
    box.dataset.id = id;
    box.dataset.state = 'shown';
  }

  async function enter(id) {
    const box = $('detail');
    window.scrollTo(0, 0);
    if (shown === id && box.dataset.state === 'shown') { drawDetail?.(); return; }
    shown = id;
    drawDetail = null;
    box.dataset.state = 'loading';
    box.replaceChildren(el('section', { class: 'card' }, el('p', { class: 'hint', text: 'Loading…' })));
    try {
      const answer = await W.api.detail(id);
      if (shown !== id) return;
      render(box, id, answer);
    } catch (err) {
      if (shown !== id) return;
      box.dataset.state = 'missing';
      box.replaceChildren(el('section', { class: 'card' },
        el('h2', { text: err.status === 404 ? 'No such test' : 'Could not load this test' }),
        el('p', { class: 'hint', text: err.message }),
        el('p', null, el('a', { class: 'button', href: '#/', text: '← Results' }))));
    }
  }

  function init() {
    W.router.register('test', { element: $('view-test'), enter, leave: () => { shown = null; } });
    let timer = null;
    window.addEventListener('resize', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { if (W.router.active() === 'test') drawDetail?.(); }, 100);
    });
  }

  W.detail = { init, intervalsOf, facts, redraw: () => drawDetail?.() };
})();
