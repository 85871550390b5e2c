// webperf3 dashboard: plain JS, no build step, no dependencies.
//
// Data flow: on load (and on every websocket (re)connect) the page fetches
// /api/status, /api/latest and /api/results; the websocket then pushes
// `status`, `progress`, `result` and `cleared` events.
//
// Names, titles and errors come from iperf3 clients: they are data, never
// markup. Everything is rendered through textContent (the `el` helper);
// nothing here assigns innerHTML.
'use strict';

(() => {
  const HISTORY_ROWS = 200;

  const state = {
    version: null,
    ports: [],              // port numbers, in order
    status: new Map(),      // port -> {state, client, name, started, bps, seconds}
    latest: new Map(),      // port -> result object (absent: none / cleared)
    results: [],            // every result, oldest first
    resultKeys: new Set(),  // resultKey() of each of them
    logError: null,
    clearProtected: false,  // POST /api/clear needs a token
    nameFilter: '',
    showAll: false,
  };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers ------------------------------------------------------

  /** Creates an element; `props` may hold class, text, title, data (object). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      if (props.class) node.className = props.class;
      if (props.text != null) node.textContent = String(props.text);
      if (props.title != null) node.title = String(props.title);
      if (props.label != null) node.dataset.label = props.label;
      if (props.data) for (const [k, v] of Object.entries(props.data)) node.dataset[k] = String(v);
    }
    for (const child of children) {
      if (child == null) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  // ---- Formatting -------------------------------------------------------

  /** 941234567 -> "941 Mbit/s" (three significant digits). */
  function fmtRate(bps) {
    if (bps == null || !Number.isFinite(bps)) return '—';
    const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
    let v = Math.abs(bps);
    let i = 0;
    while (v >= 999.5 && i < units.length - 1) { v /= 1000; i += 1; }
    const digits = v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
    return `${(Math.sign(bps) * v).toFixed(i === 0 ? 0 : digits)} ${units[i]}`;
  }

  /** An axis label: like fmtRate, without trailing zeros ("30 Gbit/s"). */
  function fmtAxis(bps) {
    return fmtRate(bps).replace(/\.0+ /, ' ').replace(/(\.\d*?)0+ /, '$1 ');
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** Unix seconds -> "YYYY-MM-DD HH:MM" in local time. */
  function fmtDate(ts) {
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  /** Unix seconds -> "just now", "5 min ago", "3 h ago", "2 days ago". */
  function fmtAgo(ts) {
    const s = Date.now() / 1000 - ts;
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    const days = Math.round(s / 86400);
    return days === 1 ? 'yesterday' : `${days} days ago`;
  }

  function fmtSeconds(s) {
    if (s == null || !Number.isFinite(s)) return '—';
    return s >= 100 ? `${Math.round(s)} s` : `${Number(s.toFixed(1))} s`;
  }

  function fmtUdp(r) {
    if (r.protocol !== 'UDP') return '—';
    const loss = r.lost_percent == null ? '—' : `${Number(r.lost_percent.toFixed(2))} %`;
    const jitter = r.jitter_ms == null ? '—' : `${Number(r.jitter_ms.toFixed(3))} ms`;
    return `${loss} / ${jitter}`;
  }

  /** The machine's side of a result: server CPU and Pi temperature, and
   *  warnings when the Pi throttled or another test shared the link. */
  function fmtHealth(r) {
    const info = [];
    if (r.server_cpu_percent != null) info.push(`server CPU ${Math.round(r.server_cpu_percent)} %`);
    if (r.cpu_temp_c != null) info.push(`${Number(r.cpu_temp_c.toFixed(1))} °C`);
    const warn = [];
    if (r.overlapped) warn.push('overlapped another test');
    if (r.throttled && r.throttled.length) warn.push(`Pi ${r.throttled.join(', ')}`);
    return { info: info.join(' · '), warn: warn.join(' · ') };
  }

  function fmtProtocol(r) {
    const parts = [r.protocol || '?'];
    if (r.bidir) parts.push('bidir');
    else if (r.reverse) parts.push('-R');
    if (r.streams > 1) parts.push(`×${r.streams}`);
    return parts.join(' ');
  }

  // ---- Rendering --------------------------------------------------------

  function render() {
    renderNow();
    renderLatest();
    renderNames();
    renderHistory();
    drawChart();
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

  function renderNow() {
    const box = $('now-running');
    const running = runningPorts();
    box.replaceChildren(...running.map((port) => {
      const s = state.status.get(port);
      const who = [s.name, s.client].filter(Boolean).join(' · ') || 'unnamed client';
      const since = s.seconds != null ? `${fmtSeconds(s.seconds)} in` : 'starting…';
      return el('div', { class: 'live', data: { port } },
        el('div', { class: 'who', text: `Port ${port}: ${who}`, title: who }),
        el('div', { class: 'rate', text: s.bps != null ? fmtRate(s.bps) : '…' }),
        el('div', { class: 'meta', text: since }));
    }));
    $('now-idle').hidden = running.length > 0;
    const first = state.ports[0] ?? 5201;
    const host = location.hostname.includes(':') ? `[${location.hostname}]` : (location.hostname || 'HOST');
    $('howto').textContent = `iperf3 -c ${host} -p ${first} --extra-data YOUR-NAME`;
  }

  function rateCell(bps, cls, label) {
    return el('td', { class: `num ${bps == null ? 'empty blank' : cls}`, label, text: fmtRate(bps) });
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
    const nameCell = stackCell({ class: 'name', label: 'Name' },
      el('span', { text: r.name ?? '—' }),
      r.title ? el('span', { class: 'sub', text: r.title }) : null,
      r.error ? el('span', { class: 'sub failed', text: r.error }) : null,
      fmtHealth(r).warn ? el('span', { class: 'sub warn', text: fmtHealth(r).warn }) : null,
      fmtHealth(r).info ? el('span', { class: 'sub health', text: fmtHealth(r).info }) : null);
    tr.append(
      nameCell,
      el('td', { class: 'client', label: 'Client', text: r.client ?? '—' }),
      stackCell({ class: 'when', label: 'When', title: fmtDate(r.timestamp) },
        el('span', { text: fmtAgo(r.timestamp) }),
        el('span', { class: 'sub', text: fmtDate(r.timestamp) })),
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

  function names() {
    const set = new Set();
    for (const r of state.results) if (r.name != null && r.name !== '') set.add(r.name);
    return [...set].sort((a, b) => a.localeCompare(b));
  }

  function renderNames() {
    const select = $('name-filter');
    const list = names();
    if (state.nameFilter && !list.includes(state.nameFilter)) list.push(state.nameFilter);
    const options = [el('option', { text: 'All names' })];
    options[0].value = '';
    for (const name of list) {
      const option = el('option', { text: name });
      option.value = name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = state.nameFilter;
  }

  function filtered() {
    if (!state.nameFilter) return state.results;
    return state.results.filter((r) => r.name === state.nameFilter);
  }

  function renderHistory() {
    const body = $('history').tBodies[0];
    const list = filtered();
    const shown = state.showAll ? list.slice().reverse() : list.slice(-HISTORY_ROWS).reverse();
    const rows = shown.map((r) => {
      const udp = r.protocol === 'UDP' && (r.lost_percent != null || r.jitter_ms != null) ? `loss / jitter ${fmtUdp(r)}` : null;
      const health = fmtHealth(r);
      const notes = [r.title, udp, r.error, health.warn, health.info].filter(Boolean).join(' · ');
      return el('tr', { data: { port: r.port } },
        el('td', { label: 'When', text: fmtDate(r.timestamp) }),
        el('td', { label: 'Port', text: r.port }),
        el('td', { class: 'name', label: 'Name', text: r.name ?? '—' }),
        el('td', { label: 'Client', text: r.client ?? '—' }),
        rateCell(r.receive_bps, 'rate-up', 'Upload'),
        rateCell(r.send_bps, 'rate-down', 'Download'),
        el('td', { label: 'Protocol', text: fmtProtocol(r) }),
        el('td', { class: 'num', label: 'Duration', text: fmtSeconds(r.duration) }),
        el('td', { class: notes ? (r.error ? 'failed' : '') : 'blank', label: 'Notes', text: notes }));
    });
    if (rows.length === 0) {
      const td = el('td', { class: 'empty', text: 'No tests recorded yet.' });
      td.colSpan = 9;
      rows.push(el('tr', null, td));
    }
    body.replaceChildren(...rows);
    const more = list.length > shown.length;
    $('history-more').hidden = !more;
    $('show-all').textContent = `Show all ${list.length}`;
  }

  // ---- Chart ------------------------------------------------------------

  /** A "nice" step (1, 2 or 5 × 10^n) for about `count` ticks up to `max`. */
  function niceStep(max, count) {
    const raw = max / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawChart() {
    const canvas = $('chart');
    const list = filtered();
    $('chart-title').textContent = state.nameFilter
      ? `Results of “${state.nameFilter}” over time (${list.length})`
      : `All results over time (${list.length})`;

    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const fg = cssVar('--muted');
    const line = cssVar('--line');
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = fg;

    const series = [
      { color: cssVar('--up'), points: list.filter((r) => r.receive_bps != null).map((r) => [r.timestamp, r.receive_bps]) },
      { color: cssVar('--down'), points: list.filter((r) => r.send_bps != null).map((r) => [r.timestamp, r.send_bps]) },
    ];
    for (const s of series) s.points.sort((a, b) => a[0] - b[0]);
    // One person's results form a line; everybody's together are only dots.
    const lines = Boolean(state.nameFilter);
    const all = series.flatMap((s) => s.points);
    if (all.length === 0) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('No results to plot yet.', width / 2, height / 2);
      return;
    }

    const maxY = Math.max(...all.map((p) => p[1])) || 1;
    const step = niceStep(maxY * 1.05, 4);
    const top = Math.ceil((maxY * 1.05) / step) * step;
    let t0 = Math.min(...all.map((p) => p[0]));
    let t1 = Math.max(...all.map((p) => p[0]));
    if (t1 - t0 < 60) { t0 -= 30; t1 += 30; }

    const yLabels = [];
    for (let v = 0; v <= top + step / 2; v += step) yLabels.push(v);
    const left = Math.max(...yLabels.map((v) => ctx.measureText(fmtAxis(v)).width)) + 12;
    const margin = { left, right: 14, top: 10, bottom: 26 };
    const plotW = Math.max(10, width - margin.left - margin.right);
    const plotH = Math.max(10, height - margin.top - margin.bottom);
    const x = (t) => margin.left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (v) => margin.top + plotH - (v / top) * plotH;

    // Grid and y labels.
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of yLabels) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(margin.left, yy);
      ctx.lineTo(margin.left + plotW, yy);
      ctx.stroke();
      ctx.fillText(fmtAxis(v), margin.left - 6, yy);
    }

    // Time labels: a few, spaced so they do not overlap.
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const span = t1 - t0;
    const sameDay = new Date(t0 * 1000).toDateString() === new Date(t1 * 1000).toDateString();
    const label = (t) => {
      const d = new Date(t * 1000);
      const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      if (span < 900) return `${hm}:${pad(d.getSeconds())}`;
      return sameDay ? hm : `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
    };
    const sample = ctx.measureText(label(t1)).width + 24;
    const count = Math.max(1, Math.min(6, Math.floor(plotW / sample)));
    let previous = null;
    for (let i = 0; i <= count; i += 1) {
      const t = t0 + (span * i) / count;
      const text = label(t);
      if (text === previous) continue;
      previous = text;
      ctx.textAlign = i === 0 ? 'left' : i === count ? 'right' : 'center';
      ctx.fillText(text, x(t), margin.top + plotH + 7);
    }

    // Series: lines between consecutive tests, a dot per test.
    for (const s of series) {
      if (s.points.length === 0) continue;
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      s.points.forEach(([t, v], i) => (i === 0 ? ctx.moveTo(x(t), y(v)) : ctx.lineTo(x(t), y(v))));
      if (lines && s.points.length > 1) ctx.stroke();
      const radius = s.points.length > 60 ? 2 : 3.5;
      for (const [t, v] of s.points) {
        ctx.beginPath();
        ctx.arc(x(t), y(v), radius, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }

  // ---- Data -------------------------------------------------------------

  function applyStatus(status) {
    state.version = status.version ?? state.version;
    state.ports = status.ports.map((p) => p.port);
    state.status = new Map(status.ports.map((p) => [p.port, p]));
    state.logError = status.log_error ?? null;
    // Only /api/status says this; live status events leave it as it was.
    if (typeof status.clear_protected === 'boolean') state.clearProtected = status.clear_protected;
  }

  function applyLatest(latest) {
    state.latest = new Map();
    latest.forEach((r, i) => {
      if (r) state.latest.set(r.port, r);
      else if (state.ports[i] != null) state.latest.delete(state.ports[i]);
    });
  }

  async function getJSON(url, options) {
    const response = await fetch(url, { cache: 'no-store', ...options });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  /** Identifies a result, so one seen both in a snapshot and as an event counts once. */
  function resultKey(r) {
    return [r.port, r.timestamp, r.name, r.client, r.bytes_received, r.bytes_sent].join('|');
  }

  function addResult(r) {
    const key = resultKey(r);
    if (state.resultKeys.has(key)) return false;
    state.resultKeys.add(key);
    state.results.push(r);
    return true;
  }

  // Every reload gets a number; only the newest one started may apply its
  // snapshot, so a slow old answer never overwrites newer state.
  let reloadGen = 0;

  /** Fetches a full snapshot; resolves true if it was applied. */
  async function reload() {
    const gen = ++reloadGen;
    const [status, latest, results] = await Promise.all([
      getJSON('/api/status'), getJSON('/api/latest'), getJSON('/api/results'),
    ]);
    if (gen !== reloadGen) return false;
    applyStatus(status);
    applyLatest(latest);
    state.results = [];
    state.resultKeys = new Set();
    for (const r of results) addResult(r);
    return true;
  }

  // While a (re)connected socket's snapshot is loading, its events wait
  // here and are replayed on top of the snapshot: every event since the
  // server subscribed us is applied after it, in order, and nothing is lost
  // or counted twice.
  let pending = null;

  function syncAfterConnect() {
    pending = [];
    const queue = pending;
    reload()
      .catch(() => true)
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
        addResult(msg.result);
        state.latest.set(msg.result.port, msg.result);
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
        renderLatest();
        renderNames();
        renderHistory();
        drawChart();
        break;
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

  function init() {
    $('clear').addEventListener('click', clearTable);
    $('name-filter').addEventListener('change', (ev) => {
      state.nameFilter = ev.target.value;
      state.showAll = false;
      renderHistory();
      drawChart();
    });
    $('show-all').addEventListener('click', () => {
      state.showAll = true;
      renderHistory();
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(drawChart, 100);
    });
    if (window.matchMedia) {
      window.matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', drawChart);
    }
    // "5 min ago" stays true.
    setInterval(renderLatest, 30000);
    render();
    // A first snapshot right away (also shown if websockets cannot get
    // through), then live events.
    reload().then((applied) => { if (applied) render(); }, () => setConn('offline', 'offline'));
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
