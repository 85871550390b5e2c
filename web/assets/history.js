// webperf3 page: the history of recorded tests, at any size. The table
// holds pages of results asked for on demand (the newest page first, then
// "Older tests"), never the whole history; the chart draws time buckets the
// server aggregates (a bounded number of points however many tests there
// are). Filters: name, port, protocol, address family and a date range.
// Choosing a name shows that person's tests over time, upload and download,
// IPv4 and IPv6 as separate series.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { $, el, fmtDate, fmtSeconds, fmtUdp, fmtHealth, fmtProtocol, testLink, rateCell } = W;

  /** Results per page of the table. */
  const PAGE = 100;
  /** Most results the table keeps from live events; older ones are
   *  dropped (and reachable again with "Older tests"). */
  const MAX_LIVE_ROWS = 2000;
  /** Most time buckets the chart asks for. */
  const MAX_BUCKETS = 240;

  const state = {
    filters: { name: '', port: '', protocol: '', family: '', since: '', until: '' },
    rows: [],          // loaded results, oldest first
    ids: new Set(),    // their ids (or keys)
    more: false,       // the server may have older matching tests
    loading: false,
    generation: 0,     // bumps on every reload; stale answers are dropped
    names: new Set(),  // names seen, offered in the name box
    buckets: null,     // chart data: [{family, list}] or null while loading
  };

  /** Identifies a result: its id, or its figures for a server without ids. */
  function key(r) {
    return r.id || [r.port, r.timestamp, r.name, r.client, r.bytes_received, r.bytes_sent].join('|');
  }

  /** Whether `r` passes the filters (for results arriving live). */
  function matches(r) {
    const f = state.filters;
    if (f.name && r.name !== f.name) return false;
    if (f.port && String(r.port) !== f.port) return false;
    if (f.protocol && (r.protocol || '').toLowerCase() !== f.protocol.toLowerCase()) return false;
    if (f.family && String(W.family(r)) !== f.family) return false;
    if (f.since && r.timestamp < Number(f.since)) return false;
    if (f.until && r.timestamp > Number(f.until)) return false;
    return true;
  }

  function row(r) {
    const udp = r.protocol === 'UDP' && (r.lost_percent != null || r.jitter_ms != null) ? `loss / jitter ${fmtUdp(r)}` : null;
    const health = fmtHealth(r);
    const notes = [r.title, udp, r.error, health.warn, health.info].filter(Boolean).join(' · ');
    return el('tr', { data: { port: r.port } },
      el('td', { label: 'When' }, testLink(r, fmtDate(r.timestamp), 'Show this test in detail')),
      // A probe ran on no port of the box (its result says 0).
      el('td', { label: 'Port', text: r.kind === 'probe' ? '—' : r.port }),
      el('td', { class: 'name', label: 'Name', text: r.name ?? '—' }),
      el('td', { label: 'Client', text: r.kind === 'probe' ? `this box → ${r.target}` : (r.client ?? '—') }),
      rateCell(r.receive_bps, 'rate-up', 'Upload'),
      rateCell(r.send_bps, 'rate-down', 'Download'),
      el('td', { label: 'Protocol', text: fmtProtocol(r) }),
      el('td', { class: 'num', label: 'Duration', text: fmtSeconds(r.duration) }),
      el('td', { class: notes ? (r.error ? 'failed' : '') : 'blank', label: 'Notes', text: notes }));
  }

  function renderTable() {
    const rows = [];
    for (let i = state.rows.length - 1; i >= 0; i -= 1) rows.push(row(state.rows[i]));
    if (rows.length === 0) {
      const td = el('td', { class: 'empty', text: state.loading ? 'Loading…' : 'No tests recorded yet.' });
      td.colSpan = 9;
      rows.push(el('tr', null, td));
    }
    $('history').tBodies[0].replaceChildren(...rows);
    $('older').hidden = !state.more;
    $('older').disabled = state.loading;
    $('history-count').textContent = state.rows.length
      ? `${state.rows.length} newest matching test${state.rows.length === 1 ? '' : 's'} shown`
      : '';
  }

  function renderNames() {
    const list = [...state.names].sort((a, b) => a.localeCompare(b));
    $('names').replaceChildren(...list.map((name) => {
      const option = el('option');
      option.value = name;
      return option;
    }));
  }

  function noteNames(results) {
    let added = false;
    for (const r of results) {
      if (r.name != null && r.name !== '' && !state.names.has(r.name) && state.names.size < 5000) {
        state.names.add(r.name);
        added = true;
      }
    }
    if (added) renderNames();
  }

  // ---- Chart --------------------------------------------------------------

  /** The series to draw: upload and download, per family when a name is chosen. */
  function chartSeries() {
    const up = W.cssVar('--up');
    const down = W.cssVar('--down');
    const series = [];
    for (const { family, list } of state.buckets || []) {
      const suffix = family ? ` IPv${family}` : '';
      const dash = family === 6;
      const pick = (dir) => list.filter((b) => b[dir]).map((b) => ({
        x: (b.t0 + b.t1) / 2, y: b[dir].mean, lo: b[dir].min, hi: b[dir].max, n: b.count, b,
      }));
      series.push({ label: `Upload${suffix}`, color: up, dash, points: pick('up') });
      series.push({ label: `Download${suffix}`, color: down, dash, points: pick('down') });
    }
    return series;
  }

  function drawChart() {
    const canvas = $('chart');
    const f = state.filters;
    const total = (state.buckets || []).reduce((n, s) => n + s.list.reduce((m, b) => m + b.count, 0), 0);
    const what = f.name ? `Tests of “${f.name}” over time` : 'All tests over time';
    $('chart-title').textContent = state.buckets ? `${what} (${total})` : `${what} (loading…)`;
    const series = chartSeries();
    const tipTitle = (p) => (p.b && p.b.t1 - p.b.t0 > 90
      ? `${fmtDate(p.b.t0)} – ${fmtDate(p.b.t1)}`
      : fmtDate(p.x));
    W.chart.draw(canvas, {
      kind: 'time',
      series,
      tipTitle,
      empty: state.buckets ? 'No results to plot.' : 'Loading…',
    });
    W.chart.legend($('chart-legend'), series.filter((s) => s.points.length > 0 || !f.name));
  }

  /** How many buckets fit the chart: about one per 4 px. */
  function bucketCount() {
    const width = $('chart').clientWidth || 800;
    return Math.max(20, Math.min(MAX_BUCKETS, Math.floor(width / 4)));
  }

  /** Fetches the chart's buckets (per family when a name is chosen). */
  async function loadBuckets(gen) {
    const f = state.filters;
    const families = f.name && !f.family ? ['4', '6'] : [f.family || ''];
    const n = bucketCount();
    let sets;
    try {
      sets = await Promise.all(families.map(async (family) => ({
        family: family ? Number(family) : 0,
        list: await W.api.buckets({ ...f, family }, n),
      })));
    } catch (err) {
      if (err.status !== 404) throw err;
      // No bucket route on this server: bucket the rows the page holds.
      sets = families.map((family) => ({
        family: family ? Number(family) : 0,
        list: W.api.bucketsOf(state.rows.filter((r) => !family || String(W.family(r)) === family), n),
      }));
    }
    if (gen !== state.generation) return;
    state.buckets = sets;
    drawChart();
  }

  let chartTimer = null;

  /** Refreshes the chart soon (new results arrive one by one). */
  function refreshChartSoon() {
    clearTimeout(chartTimer);
    chartTimer = setTimeout(() => loadBuckets(state.generation).catch(() => {}), 1500);
  }

  // ---- Pages ----------------------------------------------------------------

  function addRows(results, older) {
    const fresh = results.filter((r) => !state.ids.has(key(r)));
    for (const r of fresh) state.ids.add(key(r));
    state.rows = older ? fresh.concat(state.rows) : state.rows.concat(fresh);
    noteNames(fresh);
  }

  /** Starts the history over with the current filters: the newest page and the chart. */
  async function reload() {
    const gen = ++state.generation;
    state.rows = [];
    state.ids = new Set();
    state.loading = true;
    state.buckets = null;
    renderTable();
    drawChart();
    try {
      const { page, more } = await W.api.results(state.filters, PAGE);
      if (gen !== state.generation) return;
      addRows(page, false);
      state.more = more && Boolean(page[0]?.id);
    } finally {
      if (gen === state.generation) {
        state.loading = false;
        renderTable();
      }
    }
    await loadBuckets(gen);
  }

  /** Adds the page of tests before the oldest one shown. */
  async function older() {
    if (state.loading || state.rows.length === 0) return;
    const gen = state.generation;
    state.loading = true;
    renderTable();
    try {
      const { page, more } = await W.api.results(state.filters, PAGE, state.rows[0].id);
      if (gen !== state.generation) return;
      addRows(page, true);
      state.more = more;
    } finally {
      if (gen === state.generation) {
        state.loading = false;
        renderTable();
      }
    }
  }

  /** A result recorded just now (from the websocket). */
  function onResult(r) {
    noteNames([r]);
    if (!matches(r) || state.ids.has(key(r))) return;
    state.ids.add(key(r));
    state.rows.push(r);
    if (state.rows.length > MAX_LIVE_ROWS && state.rows[0].id) {
      for (const old of state.rows.splice(0, state.rows.length - MAX_LIVE_ROWS)) state.ids.delete(key(old));
      state.more = true;
    }
    renderTable();
    refreshChartSoon();
  }

  // ---- Filters ------------------------------------------------------------

  /** Unix seconds of local midnight starting `date` ("YYYY-MM-DD"), plus `days`. */
  function dayStart(date, days) {
    const [y, m, d] = date.split('-').map(Number);
    return Math.floor(new Date(y, m - 1, d + days).getTime() / 1000);
  }

  function readFilters() {
    const since = $('f-since').value;
    const until = $('f-until').value;
    state.filters = {
      name: $('name-filter').value.trim(),
      port: $('f-port').value,
      protocol: $('f-protocol').value,
      family: $('f-family').value,
      since: since ? String(dayStart(since, 0)) : '',
      until: until ? String(dayStart(until, 1) - 1) : '',
    };
  }

  function onFilterChange() {
    readFilters();
    reload().catch(showError);
  }

  function showError(err) {
    state.loading = false;
    renderTable();
    $('history-count').textContent = `Could not load the history: ${err.message}`;
  }

  /** The ports offered in the port filter. */
  function setPorts(ports) {
    const select = $('f-port');
    const have = [...select.options].map((o) => o.value).filter(Boolean);
    if (have.join() === ports.join()) return;
    const keep = select.value;
    const options = [el('option', { text: 'All ports' })];
    options[0].value = '';
    for (const p of ports) {
      const o = el('option', { text: String(p) });
      o.value = String(p);
      options.push(o);
    }
    select.replaceChildren(...options);
    select.value = keep;
  }

  function init() {
    const form = $('filters');
    form.addEventListener('submit', (ev) => { ev.preventDefault(); onFilterChange(); });
    form.addEventListener('change', onFilterChange);
    form.addEventListener('reset', () => setTimeout(onFilterChange, 0));
    $('older').addEventListener('click', () => older().catch(showError));
  }

  W.history = {
    init, reload: () => reload().catch(showError), onResult, setPorts, drawChart, noteNames,
    state,
  };
})();
