// webperf3 page: the dashboard's live part and the wiring of the views.
//
// Data flow: on load (and on every websocket (re)connect) the page fetches
// /api/status and /api/latest, and the history its first page; the
// websocket then pushes `status`, `progress`, `result` and `cleared` events.
// The other files: util.js (elements, formats), api.js (questions to the
// server), chart.js (canvas charts), router.js (views by address),
// history.js (the history), detail.js (one test at #/test/<id>),
// speedtest.js (the speed test at #/speedtest), grade.js (latency in words).
//
// Names, titles and errors come from iperf3 clients: they are data, never
// markup. Everything is rendered through textContent (the `el` helper);
// nothing here assigns innerHTML.
'use strict';

(() => {
  const W = window.webperf3;
  const { $, el, fmtRate, fmtDate, fmtAgo, fmtSeconds, fmtUdp, fmtHealth, fmtProtocol, testLink, rateCell } = W;

  const state = {
    version: null,
    ports: [],              // port numbers, in order
    status: new Map(),      // port -> {state, client, name, started, bps, seconds}
    latest: new Map(),      // port -> result object (absent: none / cleared)
    logError: null,
    clearProtected: false,  // POST /api/clear needs a token
  };

  // ---- Rendering --------------------------------------------------------

  function render() {
    renderNow();
    renderLatest();
    renderBanner();
  }

  function renderBanner() {
    const banner = $('log-error');
    if (state.logError) {
      banner.textContent = `Results are not being saved: ${state.logError}`;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    $('version').textContent = state.version ? `webperf3 ${state.version}` : 'webperf3';
  }

  function runningPorts() {
    return state.ports.filter((p) => state.status.get(p)?.state === 'running');
  }

  /** What a running test does, seen from its client. */
  const LIVE_WAY = {
    upload: 'uploading ↑ (sending to this box)',
    download: 'downloading ↓ (receiving from this box)',
    both: 'uploading and downloading ↕',
  };

  function renderNow() {
    const box = $('now-running');
    const running = runningPorts();
    box.replaceChildren(...running.map((port) => {
      const s = state.status.get(port);
      const device = s.name || 'an unnamed device';
      const way = LIVE_WAY[s.direction] || 'testing';
      const left = s.duration != null && s.seconds != null
        ? `${fmtSeconds(Math.max(0, s.duration - s.seconds))} left of ${fmtSeconds(s.duration)}`
        : s.seconds != null ? `${fmtSeconds(s.seconds)} in` : 'starting…';
      return el('div', { class: 'live', data: { port } },
        el('div', { class: 'who', text: `${device} is ${way}`, title: [s.name, s.client].filter(Boolean).join(' · ') }),
        el('div', { class: 'rate', text: s.bps != null ? fmtRate(s.bps) : '…' }),
        el('div', { class: 'meta', text: `${left} · port ${port}${s.client ? ` · ${s.client}` : ''}` }));
    }));
    $('now-idle').hidden = running.length > 0;
    const first = state.ports[0] ?? 5201;
    const host = location.hostname.includes(':') ? `[${location.hostname}]` : (location.hostname || 'HOST');
    $('howto').textContent = `iperf3 -c ${host} -p ${first} --extra-data YOUR-NAME`;
  }

  /** A cell whose several parts stay together (one block beside its label on phones). */
  function stackCell(props, ...parts) {
    return el('td', props, el('div', { class: 'stack' }, ...parts));
  }

  /** The latest-table row of one port: its status and its latest result. */
  function latestRow(port) {
    const s = state.status.get(port) || { state: 'idle' };
    const r = state.latest.get(port);
    const busy = s.state === 'running';
    const tr = el('tr', { class: busy ? 'busy' : '', data: { port } });

    const parts = [];
    if (busy) {
      parts.push(el('span', { class: 'badge running', text: 'running' }));
      const who = [s.name, s.client].filter(Boolean).join(' · ');
      if (who) parts.push(el('span', { class: 'sub', text: who }));
      if (s.bps != null) parts.push(el('span', { class: 'sub', text: `${fmtRate(s.bps)} · ${fmtSeconds(s.seconds)}` }));
    } else {
      parts.push(el('span', { class: 'badge', text: 'idle' }));
    }
    const nowCell = stackCell({ class: 'status', label: 'Now' }, ...parts);
    tr.append(el('td', { class: 'port', label: 'Port', text: port }), nowCell);

    if (!r) {
      tr.append(el('td', { class: 'name empty', label: 'Name', text: 'no result yet' }));
      for (const label of ['Client', 'When', 'Upload', 'Download', 'Protocol', 'Duration', 'UDP loss / jitter']) {
        tr.append(el('td', { class: 'empty blank', label, text: '—' }));
      }
      return tr;
    }
    const health = fmtHealth(r);
    const nameCell = stackCell({ class: 'name', label: 'Name' },
      el('span', { text: r.name ?? '—' }),
      r.headline ? el('span', { class: 'sub headline', text: r.headline }) : null,
      r.title ? el('span', { class: 'sub', text: r.title }) : null,
      r.error ? el('span', { class: 'sub failed', text: r.error }) : null,
      health.warn ? el('span', { class: 'sub warn', text: health.warn }) : null);
    tr.append(
      nameCell,
      el('td', { class: 'client', label: 'Client', text: r.client ?? '—' }),
      stackCell({ class: 'when', label: 'When', title: fmtDate(r.timestamp) },
        testLink(r, fmtAgo(r.timestamp), 'Show this test in detail'),
        el('span', { class: 'sub', text: busy ? `${fmtDate(r.timestamp)} (the test before)` : fmtDate(r.timestamp) })),
      rateCell(r.receive_bps, 'rate-up', 'Upload'),
      rateCell(r.send_bps, 'rate-down', 'Download'),
      el('td', { label: 'Protocol', text: fmtProtocol(r) }),
      el('td', { class: 'num', label: 'Duration', text: fmtSeconds(r.duration) }),
      el('td', { class: r.protocol === 'UDP' ? 'num' : 'num empty blank', label: 'UDP loss / jitter', text: fmtUdp(r) }),
    );
    return tr;
  }

  function renderLatest() {
    $('latest').tBodies[0].replaceChildren(...state.ports.map(latestRow));
  }

  /** Re-renders one port's row only (progress arrives every second). */
  function renderPortRow(port) {
    const old = $('latest').querySelector(`tr[data-port="${Number(port)}"]`);
    if (old) old.replaceWith(latestRow(port));
    else renderLatest();
  }

  // ---- Data -------------------------------------------------------------

  function applyStatus(status) {
    state.version = status.version ?? state.version;
    state.ports = status.ports.map((p) => p.port);
    state.status = new Map(status.ports.map((p) => [p.port, p]));
    state.logError = status.log_error ?? null;
    // Only /api/status says this; live status events leave it as it was.
    if (typeof status.clear_protected === 'boolean') state.clearProtected = status.clear_protected;
    W.history.setPorts(state.ports);
  }

  function applyLatest(latest) {
    state.latest = new Map();
    latest.forEach((r, i) => {
      if (r) state.latest.set(r.port, r);
      else if (state.ports[i] != null) state.latest.delete(state.ports[i]);
    });
    W.history.noteNames(latest.filter(Boolean));
  }

  // Every reload gets a number; only the newest one started may apply its
  // snapshot, so a slow old answer never overwrites newer state.
  let reloadGen = 0;

  /** Fetches the live snapshot; resolves true if it was applied. */
  async function reload() {
    const gen = ++reloadGen;
    const [status, latest] = await Promise.all([W.getJSON('/api/status'), W.getJSON('/api/latest')]);
    if (gen !== reloadGen) return false;
    applyStatus(status);
    applyLatest(latest);
    return true;
  }

  // While a (re)connected socket's snapshot is loading, its events wait
  // here and are replayed on top of the snapshot: every event since the
  // server subscribed us is applied after it, in order, and nothing is lost
  // or counted twice (the history drops results it already holds).
  let pending = null;

  function syncAfterConnect() {
    pending = [];
    const queue = pending;
    Promise.all([reload(), W.history.refresh()])
      .then(([applied]) => applied, () => true)
      .then((applied) => {
        if (!applied || pending !== queue) return; // a newer sync owns the state
        pending = null;
        for (const msg of queue) applyEvent(msg);
        render();
      });
  }

  /** Changes the state as one websocket event says (no drawing). */
  function applyEvent(msg) {
    switch (msg.type) {
      case 'status':
        applyStatus(msg);
        break;
      case 'progress': {
        const s = state.status.get(msg.port);
        if (s) {
          s.state = 'running';
          s.bps = msg.bps;
          s.seconds = msg.seconds;
        }
        break;
      }
      case 'result':
        state.latest.set(msg.result.port, msg.result);
        W.history.onResult(msg.result);
        break;
      case 'cleared':
        state.latest = new Map();
        break;
      default:
        break;
    }
  }

  /** Applies one websocket event and redraws what it changed. */
  function onEvent(msg) {
    applyEvent(msg);
    switch (msg.type) {
      case 'status':
        renderNow();
        renderLatest();
        renderBanner();
        break;
      case 'progress':
        renderNow();
        renderPortRow(msg.port);
        break;
      case 'result':
      case 'cleared':
        renderLatest();
        break;
      default:
        break;
    }
  }

  // ---- Websocket with reconnect ------------------------------------------

  let retryDelay = 1000;
  let retryTimer = null;

  function setConn(kind, text) {
    const conn = $('conn');
    conn.dataset.state = kind;
    conn.textContent = text;
  }

  function connect() {
    clearTimeout(retryTimer);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/ws`);
    } catch (err) {
      scheduleReconnect();
      return;
    }
    setConn('connecting', 'connecting…');
    socket.addEventListener('open', () => {
      retryDelay = 1000;
      setConn('live', 'live');
      // Fill in whatever was missed while disconnected.
      syncAfterConnect();
    });
    socket.addEventListener('message', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (pending) pending.push(msg);
      else onEvent(msg);
    });
    socket.addEventListener('close', () => scheduleReconnect());
  }

  function scheduleReconnect() {
    clearTimeout(retryTimer);
    // Exponential backoff with jitter, capped at 30 s.
    const delay = Math.min(30000, retryDelay) * (0.8 + Math.random() * 0.4);
    retryDelay = Math.min(30000, retryDelay * 2);
    const until = Date.now() + delay;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) { connect(); return; }
      setConn('offline', `offline · retrying in ${left} s`);
      retryTimer = setTimeout(tick, Math.min(1000, until - Date.now()));
    };
    tick();
  }

  // ---- Controls ---------------------------------------------------------

  // The clear token, once typed, is kept for this page only (never stored).
  let clearToken = null;

  function askToken(message) {
    const typed = window.prompt(message, '');
    clearToken = typed ? typed.trim() : null;
    return clearToken;
  }

  async function clearTable() {
    const ok = window.confirm('Clear the latest-result table?\n\nThe history and the CSV keep every test.');
    if (!ok) return;
    if (state.clearProtected && !clearToken && !askToken('Clearing needs the clear token:')) return;
    try {
      for (;;) {
        const headers = clearToken ? { Authorization: `Bearer ${clearToken}` } : {};
        const response = await fetch('/api/clear', { method: 'POST', cache: 'no-store', headers });
        if (response.status === 401) {
          // The server wants a token (or a different one): ask, then retry.
          state.clearProtected = true;
          const again = clearToken ? 'That token was not accepted. Clear token:' : 'Clearing needs the clear token:';
          if (!askToken(again)) return;
          continue;
        }
        if (!response.ok) throw new Error(`/api/clear: HTTP ${response.status}`);
        applyLatest(await response.json());
        renderLatest();
        return;
      }
    } catch (err) {
      window.alert(`Clearing failed: ${err.message}`);
    }
  }

  let firstSnapshot = Promise.resolve();

  /** Shows the dashboard once its snapshot and the history's first page
   *  are in (or a few seconds passed), so it is drawn once, not row by row. */
  function reveal(historyPage) {
    const home = $('view-home');
    if (!home.classList.contains('pending')) return;
    const show = () => home.classList.remove('pending');
    Promise.allSettled([firstSnapshot, historyPage]).then(show);
    setTimeout(show, 3000);
  }

  function init() {
    $('clear').addEventListener('click', clearTable);
    W.history.init();
    W.detail.init();
    W.devices.init();
    W.router.register('home', { element: $('view-home'), enter: () => reveal(W.history.enter()) });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (W.router.active() === 'home') W.history.drawChart(); }, 100);
    });
    if (window.matchMedia) {
      window.matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', () => {
        W.history.drawChart();
        W.detail.redraw();
        W.devices.redraw();
      });
    }
    // "5 min ago" stays true.
    setInterval(renderLatest, 30000);
    render();
    // A first snapshot right away (also shown if websockets cannot get
    // through), then live events.
    firstSnapshot = reload().then((applied) => { if (applied) render(); }, () => setConn('offline', 'offline'));
    W.router.start();
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
