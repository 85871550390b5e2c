// The "test this device" view (#/speedtest): a small ndt7 client
// (M-Lab's protocol, served by this box on /ndt/v7/*) that runs a download
// then an upload and shows the server's own figures while they run. The
// box records both subtests; they appear in the history like iperf3 tests.
// #/speedtest?name=NAME&autostart=1 fills the name and starts at once.
(function () {
  'use strict';

  const SUBPROTOCOL = 'net.measurementlab.ndt.v7';
  const SECONDS = 10;          // the spec's subtest length
  const GIVE_UP_MS = 15000;    // the server's hard limit
  const RETRY_MS = 2000;       // a busy box is asked again after this
  const MAX_RETRIES = 60;
  const NAME_KEY = 'webperf3.speedtest.name';

  const $ = (id) => document.getElementById(id);
  let running = false;

  function route() {
    const hash = location.hash || '';
    if (!hash.startsWith('#/speedtest')) return null;
    const q = hash.indexOf('?');
    return new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  }

  function show(on) {
    $('speedtest').hidden = !on;
    for (const s of document.querySelectorAll('main > section')) {
      // The history stays: the subtests join it when they are recorded.
      if (s.id !== 'speedtest' && !s.querySelector('#history')) s.hidden = on;
    }
    $('nav-speedtest').setAttribute('aria-current', on ? 'page' : 'false');
  }

  function fmtRate(bps) {
    if (!(bps >= 0)) return '–';
    if (bps >= 1e9) return (bps / 1e9).toFixed(2) + ' Gbit/s';
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + ' Mbit/s';
    return (bps / 1e3).toFixed(0) + ' kbit/s';
  }

  function status(text) { $('st-status').textContent = text; }

  // The server's view of one measurement: its rate, minimum RTT (ms) and
  // retransmitted share of what it sent.
  function serverFigures(test, m) {
    const tcp = m.TCPInfo || {};
    const app = m.AppInfo || {};
    let bps = null;
    if (test === 'download' && tcp.ElapsedTime > 0) bps = tcp.BytesAcked * 8 / (tcp.ElapsedTime / 1e6);
    else if (app.ElapsedTime > 0) bps = app.NumBytes * 8 / (app.ElapsedTime / 1e6);
    return {
      bps,
      minRtt: tcp.MinRTT > 0 ? tcp.MinRTT / 1000 : null,
      retrans: tcp.BytesSent > 0 ? 100 * (tcp.BytesRetrans || 0) / tcp.BytesSent : null,
    };
  }

  function showFigures(test, f) {
    const gauge = $('st-gauge');
    gauge.max = Math.max(gauge.max, (f.bps || 0) * 1.25, 1e6);
    gauge.value = f.bps || 0;
    $('st-rate').textContent = fmtRate(f.bps);
    $('st-' + test).textContent = fmtRate(f.bps);
    if (f.minRtt != null) $('st-rtt').textContent = f.minRtt.toFixed(2) + ' ms';
    if (f.retrans != null) $('st-retrans').textContent = f.retrans.toFixed(2) + ' %';
  }

  function randomBytes(n) {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
    return b;
  }

  // One subtest. Resolves with the last server figures; rejects with
  // 'refused' when the connection never opened (busy box, or off).
  function subtest(test, name) {
    return new Promise((resolve, reject) => {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const q = new URLSearchParams({ client_name: 'webperf3-speedtest', name });
      const ws = new WebSocket(`${proto}//${location.host}/ndt/v7/${test}?${q}`, SUBPROTOCOL);
      ws.binaryType = 'arraybuffer';
      let opened = false;
      let last = null;
      const timer = setTimeout(() => ws.close(), GIVE_UP_MS);
      ws.onopen = () => {
        opened = true;
        status(test === 'download' ? 'Download…' : 'Upload…');
        if (test === 'upload') pump(ws);
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return; // download data: only counted by the server
        try {
          last = serverFigures(test, JSON.parse(ev.data));
          showFigures(test, last);
        } catch (e) { /* not a measurement */ }
      };
      ws.onclose = () => {
        clearTimeout(timer);
        if (!opened) reject(new Error('refused'));
        else resolve(last);
      };
    });
  }

  // Upload: keep the socket's buffer full with growing messages for ten
  // seconds, then close.
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

  async function withRetry(test, name) {
    for (let i = 0; ; i++) {
      try {
        return await subtest(test, name);
      } catch (e) {
        if (i >= MAX_RETRIES) throw e;
        status('busy, retrying');
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  async function start() {
    if (running) return;
    running = true;
    $('st-start').disabled = true;
    const name = $('st-name').value.trim();
    try { localStorage.setItem(NAME_KEY, name); } catch (e) { /* storage off */ }
    for (const id of ['st-download', 'st-upload', 'st-rtt', 'st-retrans', 'st-rate']) $(id).textContent = '–';
    $('st-gauge').max = 1e6;
    try {
      await withRetry('download', name);
      await withRetry('upload', name);
      status('Done: both results are in the history.');
    } catch (e) {
      status('The speed test could not run (the box is busy or has it turned off).');
    } finally {
      running = false;
      $('st-start').disabled = false;
    }
  }

  function onRoute() {
    const params = route();
    show(params !== null);
    if (params === null) return;
    if (params.has('name')) $('st-name').value = params.get('name');
    if (params.get('autostart') === '1') start();
  }

  function init() {
    if (!$('speedtest')) return;
    try { $('st-name').value = localStorage.getItem(NAME_KEY) || ''; } catch (e) { /* storage off */ }
    $('st-start').addEventListener('click', start);
    window.addEventListener('hashchange', onRoute);
    onRoute();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
