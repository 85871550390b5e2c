// webperf3 page: the speed test (#/speedtest), one run of M-Lab's ndt7
// protocol against this box. A run has an id the page makes; it opens the
// latency socket (/ndt/v7/latency?run=ID, whose text frames it echoes at
// once so the box can time them), lets it measure the idle line for two
// seconds, then runs the download and the upload (both with ?run=ID, so
// the box joins them into one result) while latency is still measured,
// and finally shows the result the box recorded: rates, idle and loaded
// latency, the grade and a link to share it.
// #/speedtest?name=NAME&autostart=1 fills the name and starts at once.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { $, fmtNum } = W;

  const SUBPROTOCOL = 'net.measurementlab.ndt.v7';
  const CLIENT_NAME = 'webperf3-web';
  const SECONDS = 10;           // the length of each subtest
  const IDLE_MS = 2000;         // latency measured before any load
  const OPEN_LIMIT_MS = 3000;   // the latency socket may take this long to open
  const GIVE_UP_MS = 15000;     // the box's hard limit of a subtest
  const RETRY_MS = 2000;        // a busy box is asked again after this
  const MAX_RETRIES = 60;
  const RESULT_LIMIT_MS = 15000; // the recorded run may take this long to appear
  const NAME_KEY = 'webperf3.speedtest.name';

  const PHASE_WORDS = {
    idle: 'Checking how quickly the line answers while it is quiet…',
    download: 'Measuring download speed (box → this device)…',
    upload: 'Measuring upload speed (this device → box)…',
  };

  let running = false;

  /** A new run id: 32 hex digits. */
  function runId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  const wsBase = () => `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ndt/v7/`;
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));

  /** A rate as a number in Mbit/s, without its unit (the tile says it). */
  function mbits(bps) {
    if (typeof bps !== 'number' || !(bps >= 0)) return '–';
    const m = bps / 1e6;
    return fmtNum(m, m < 10 ? 2 : m < 1000 ? 1 : 0);
  }

  function ms(v) {
    return typeof v === 'number' && Number.isFinite(v) ? fmtNum(v, v < 10 ? 1 : 0) : '–';
  }

  const median = (xs) => {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };

  // ---- The screen --------------------------------------------------------

  function phase(text) { $('st-phase').textContent = text; }

  /** The gauge: a rate (log scale, 1 Mbit/s … 10 Gbit/s over the arc), or
   *  a latency (no arc). `done` is the share of the phase gone by. */
  function gauge(kind, value, done) {
    const box = $('st-gauge');
    box.dataset.kind = kind;
    let arc = 0;
    if (kind === 'latency') {
      $('st-now-value').textContent = ms(value);
      $('st-now-unit').textContent = 'ms';
    } else {
      $('st-now-value').textContent = mbits(value);
      $('st-now-unit').textContent = 'Mbit/s';
      if (value > 0) arc = Math.min(100, (100 * Math.log10(1 + value / 1e6)) / 4);
    }
    // No dash at all for nothing (a round cap would draw a dot).
    $('st-arc').setAttribute('stroke-dasharray', `${arc.toFixed(2)} 200`);
    $('st-arc').style.visibility = arc > 0 ? 'visible' : 'hidden';
    $('st-progress').style.transform = `scaleX(${Math.max(0, Math.min(1, done || 0))})`;
  }

  function latencyTile(main, sub) {
    $('st-latency').textContent = ms(main);
    $('st-latency-sub').textContent = sub;
  }

  function reset() {
    for (const id of ['st-download', 'st-upload', 'st-latency']) $(id).textContent = '–';
    $('st-latency-sub').textContent = 'idle · under load';
    for (const id of ['st-d-idle', 'st-d-jitter', 'st-d-down', 'st-d-up']) $(id).textContent = '–';
    summary(null);
    gauge('rate', null, 0);
  }

  /** The summary under the tiles: the grade, its words, the link. */
  function summary(result) {
    const box = $('st-summary');
    const share = $('st-share');
    const copy = $('st-copy');
    $('st-copied').textContent = '';
    if (!result) {
      box.dataset.state = 'empty';
      $('st-grade').textContent = '?';
      $('st-grade').dataset.grade = '';
      $('st-verdict').textContent = 'Your result will appear here.';
      $('st-meaning').textContent = 'The grade says how much slower the connection reacts while it is busy.';
      $('st-goodfor').textContent = '';
      share.setAttribute('href', '#/speedtest');
      copy.disabled = true;
      return;
    }
    const grade = typeof result.grade === 'string' ? result.grade : null;
    box.dataset.state = result.id ? 'shown' : 'no-link';
    $('st-grade').textContent = grade || '–';
    $('st-grade').dataset.grade = grade ? grade.replace('+', 'plus') : '';
    $('st-verdict').textContent = grade ? `Responsiveness grade ${grade}` : 'No grade for this run';
    $('st-meaning').textContent = grade
      ? [W.grade.gradeMeaning(grade), W.grade.riseText(result)].filter(Boolean).join(' ')
      : 'The box could not measure latency during this run.';
    $('st-goodfor').textContent = W.grade.goodForText(result.good_for);
    if (result.id) {
      share.setAttribute('href', W.testHref(result.id));
      copy.disabled = false;
    }
  }

  /** The figures of a finished run on the tiles and in the details. */
  function figures(r) {
    $('st-download').textContent = mbits(r.send_bps);
    $('st-upload').textContent = mbits(r.receive_bps);
    const loaded = [r.latency_down_ms, r.latency_up_ms].filter((v) => typeof v === 'number');
    latencyTile(r.latency_idle_ms, loaded.length ? `idle · ${ms(Math.max(...loaded))} ms under load` : 'while idle');
    $('st-d-idle').textContent = `${ms(r.latency_idle_ms)} ms`;
    $('st-d-jitter').textContent = `${ms(r.jitter_ms)} ms`;
    $('st-d-down').textContent = `${ms(r.latency_down_ms)} ms`;
    $('st-d-up').textContent = `${ms(r.latency_up_ms)} ms`;
  }

  // ---- Latency: the socket whose frames are echoed -----------------------

  /** Opens the run's latency socket; resolves with it once open, or with
   *  null when the box has none (the run then goes on without latency). */
  function openLatency(run, samples, now) {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new WebSocket(`${wsBase()}latency?${new URLSearchParams({ run })}`, SUBPROTOCOL);
      } catch {
        resolve(null);
        return;
      }
      const timer = setTimeout(() => { ws.close(); resolve(null); }, OPEN_LIMIT_MS);
      ws.onopen = () => { clearTimeout(timer); resolve(ws); };
      ws.onerror = () => { clearTimeout(timer); resolve(null); };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        // Echoed unchanged and at once: the box times the round trip.
        if (ws.readyState === WebSocket.OPEN) ws.send(ev.data);
        let frame;
        try { frame = JSON.parse(ev.data); } catch { return; }
        const rtt = frame.rtt_ms;
        if (typeof rtt !== 'number' || !Number.isFinite(rtt)) return;
        const ph = typeof frame.phase === 'string' ? frame.phase : 'idle';
        samples.push({ rtt, phase: ph });
        now(rtt, ph);
      };
    });
  }

  // ---- Download and upload ----------------------------------------------

  /** The box's rate from one of its measurements. */
  function rateOf(test, m) {
    const tcp = m.TCPInfo || {};
    const app = m.AppInfo || {};
    if (test === 'download' && tcp.ElapsedTime > 0) return (tcp.BytesAcked * 8) / (tcp.ElapsedTime / 1e6);
    if (app.ElapsedTime > 0) return (app.NumBytes * 8) / (app.ElapsedTime / 1e6);
    return null;
  }

  function randomBytes(n) {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b;
  }

  /** One subtest. Resolves with its last rate; rejects with 'refused'
   *  when the connection never opened (a busy box, or ndt7 off). */
  function subtest(test, query, onRate) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${wsBase()}${test}?${query}`, SUBPROTOCOL);
      ws.binaryType = 'arraybuffer';
      let opened = false;
      let last = null;
      const timer = setTimeout(() => ws.close(), GIVE_UP_MS);
      ws.onopen = () => {
        opened = true;
        if (test === 'upload') pump(ws);
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return; // download data: counted by the box
        let m;
        try { m = JSON.parse(ev.data); } catch { return; }
        const bps = rateOf(test, m);
        if (bps == null) return;
        last = bps;
        onRate(bps, (m.AppInfo?.ElapsedTime || 0) / (SECONDS * 1e6));
      };
      ws.onclose = () => {
        clearTimeout(timer);
        if (!opened) reject(new Error('refused'));
        else resolve(last);
      };
    });
  }

  /** Upload: keeps the socket's buffer full with growing messages for the
   *  subtest's length, then closes. */
  function pump(ws) {
    const t0 = performance.now();
    let size = 1 << 13;
    let total = 0;
    let data = randomBytes(size);
    function more() {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (performance.now() - t0 > SECONDS * 1000) { ws.close(1000); return; }
      while (ws.bufferedAmount < 7 * size) {
        ws.send(data);
        total += size;
        if (size < (1 << 24) && size < total / 16) {
          size *= 2;
          data = randomBytes(size);
        }
      }
      setTimeout(more, 5);
    }
    more();
  }

  async function withRetry(test, query, onRate) {
    for (let i = 0; ; i++) {
      try {
        return await subtest(test, query, onRate);
      } catch (e) {
        if (i >= MAX_RETRIES) throw e;
        phase('The box is busy with another test; trying again shortly…');
        await pause(RETRY_MS);
      }
    }
  }

  // ---- The recorded run -------------------------------------------------

  /** The result the box recorded for run `run` (started at unix time
   *  `since`, named `name`), asked for until it appears; null if it never
   *  does. A result naming its run is that run's; else the newest whole
   *  run (both directions) under this name since the start is taken. */
  async function recorded(run, since, name) {
    const deadline = Date.now() + RESULT_LIMIT_MS;
    const q = new URLSearchParams({ protocol: 'ndt7', since: String(Math.floor(since) - 1), limit: '50' });
    const whole = (r) => r && r.send_bps != null && r.receive_bps != null;
    while (Date.now() < deadline) {
      try {
        const all = (await W.getJSON(`/api/results?${q}`)).filter(whole);
        const mine = all.find((r) => r.run === run)
          || all.filter((r) => r.run == null && (r.name || '') === name).pop();
        if (mine) return mine;
      } catch { /* asked again below */ }
      await pause(500);
    }
    return null;
  }

  // ---- One run ----------------------------------------------------------

  async function start() {
    if (running) return;
    running = true;
    const box = $('speedtest');
    box.dataset.state = 'running';
    delete box.dataset.result;
    $('st-start').disabled = true;
    $('st-start').textContent = 'Testing…';
    const name = $('st-name').value.trim();
    try { localStorage.setItem(NAME_KEY, name); } catch { /* storage off */ }
    reset();

    const run = runId();
    const since = Date.now() / 1000;
    const query = new URLSearchParams({ client_name: CLIENT_NAME, run });
    if (name) query.set('name', name);
    const samples = [];
    let current = 'idle';
    const t0 = performance.now();
    const live = (rtt, ph) => {
      latencyTile(rtt, ph === 'idle' ? 'now, while quiet' : 'now, under load');
      if (current === 'idle') gauge('latency', rtt, (performance.now() - t0) / IDLE_MS);
    };
    let latency = null;
    let result = null;
    try {
      phase(PHASE_WORDS.idle);
      gauge('latency', null, 0);
      latency = await openLatency(run, samples, live);
      if (latency) await pause(IDLE_MS);
      for (const test of ['download', 'upload']) {
        current = test;
        phase(PHASE_WORDS[test]);
        gauge('rate', null, 0);
        const tile = $(`st-${test}`);
        const bps = await withRetry(test, query, (rate, done) => {
          gauge('rate', rate, done);
          tile.textContent = mbits(rate);
        });
        tile.textContent = mbits(bps);
      }
      latency?.close(1000);
      latency = null;
      current = 'saving';
      phase('Saving the result…');
      result = await recorded(run, since, name);
    } catch {
      phase('The speed test could not run: the box is busy or has it turned off.');
      box.dataset.state = 'failed';
    } finally {
      latency?.close(1000);
      running = false;
      $('st-start').disabled = false;
      $('st-start').textContent = 'Run again';
    }
    if (box.dataset.state === 'failed') return;
    if (result) figures(result);
    else latencyTile(median(samples.filter((s) => s.phase === 'idle').map((s) => s.rtt)), 'while idle');
    summary(result);
    gauge('rate', result ? result.send_bps : null, 1);
    phase(result ? 'Done.' : 'Done, but the box did not report the run as one result.');
    box.dataset.state = 'done';
    if (result?.id) box.dataset.result = result.id;
  }

  async function copyLink() {
    const url = new URL($('st-share').getAttribute('href'), location.href).href;
    try {
      await navigator.clipboard.writeText(url);
      $('st-copied').textContent = 'Link copied.';
    } catch {
      $('st-copied').textContent = url;
    }
  }

  /** The view's own options after `?` in the address. */
  function options() {
    const hash = location.hash || '';
    const q = hash.indexOf('?');
    return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  }

  /** Resolves once the page has loaded and its start-up work is done, so
   *  that an automatic run's idle latency is not the page's own loading. */
  function settled() {
    return new Promise((resolve) => {
      const idle = () => (window.requestIdleCallback ? requestIdleCallback(() => resolve(), { timeout: 3000 }) : resolve());
      if (document.readyState === 'complete') idle();
      else window.addEventListener('load', idle, { once: true });
    });
  }

  function enter() {
    const params = options();
    if (params.has('name')) $('st-name').value = params.get('name');
    if (params.get('autostart') === '1') settled().then(start);
  }

  function init() {
    if (!$('speedtest')) return;
    try { $('st-name').value = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage off */ }
    $('st-start').addEventListener('click', start);
    $('st-copy').addEventListener('click', copyLink);
    $('speedtest').dataset.state = 'ready';
    W.router.register('speedtest', { element: $('view-speedtest'), enter });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
