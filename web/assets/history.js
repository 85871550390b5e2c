// webperf3 page: the history of recorded tests, at any size. The table
// shows one page of results at a time (the newest first; "Older tests"
// and "Newer tests" move between pages), never the whole history; the
// chart draws time buckets the server aggregates (a bounded number of
// points however many tests there are), each kind of test (TCP capacity,
// UDP paced, browser) its own series. Filters (part of a name, port,
// protocol, address family, a date range) apply as they are typed and
// live in the address (`#/?name=...`), so a filtered view can be
// bookmarked and shared; the history loads when its view is first shown.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { $, el } = W;

  /** Results per page of the table. */
  const PAGE = 25;
  /** Most time buckets the chart asks for. */
  const MAX_BUCKETS = 240;
  /** How long typing pauses before the filters apply, ms. */
  const TYPING_MS = 250;
  /** The filters kept in the address, in order. */
  const KEYS = ['name', 'port', 'protocol', 'family', 'from', 'to'];

  const state = {
    filters: { name: '', port: '', protocol: '', family: '', since: '', until: '' },
    rows: [],          // the page shown, oldest first
    ids: new Set(),    // their ids (or keys)
    more: false,       // the server may have older matching tests
    before: [],        // the `before` ids of the pages newer than this one
    loading: false,
    loaded: false,     // the history was asked for at least once
    generation: 0,     // bumps on every reload; stale answers are dropped
    names: new Set(),  // names seen, offered in the name box
    buckets: null,     // chart data: [{kind, list}] or null while loading
  };

  /** Identifies a result: its id, or its figures for a server without ids. */
  function key(r) {
    return r.id || [r.port, r.timestamp, r.name, r.client, r.bytes_received, r.bytes_sent].join('|');
  }

  /** Whether `r` passes the filters (for results arriving live). */
  function matches(r) {
    const f = state.filters;
    if (f.name && !(r.name || '').toLowerCase().includes(f.name.toLowerCase())) return false;
    if (f.port && String(r.port) !== f.port) return false;
    if (f.protocol && (r.protocol || '').toLowerCase() !== f.protocol.toLowerCase()) return false;
    if (f.family && String(W.family(r)) !== f.family) return false;
    if (f.since && r.timestamp < Number(f.since)) return false;
    if (f.until && r.timestamp > Number(f.until)) return false;
    return true;
  }

  function renderTable() {
    const rows = [];
    for (let i = state.rows.length - 1; i >= 0; i -= 1) rows.push(W.resultRow(state.rows[i]));
    if (rows.length === 0) {
      const td = el('td', { class: 'empty', text: state.loading ? 'Loading…' : 'No tests match.' });
      td.colSpan = 4;
      rows.push(el('tr', null, td));
    }
    $('history').tBodies[0].replaceChildren(...rows);
    $('older').hidden = !state.more;
    $('older').disabled = state.loading;
    $('newer').hidden = state.before.length === 0;
    $('newer').disabled = state.loading;
    const n = state.rows.length;
    const which = state.before.length === 0 ? 'newest' : 'older';
    $('history-count').textContent = n
      ? `${n} ${which} matching test${n === 1 ? '' : 's'} shown`
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

  function drawChart() {
    const f = state.filters;
    const what = f.name ? `Tests of names with “${f.name}” over time` : 'All tests over time';
    W.kindChart.draw($('chart'), $('chart-legend'), $('chart-title'), what, state.buckets);
  }

  /** How many buckets fit the chart: about one per 4 px. */
  function bucketCount() {
    const width = $('chart').clientWidth || 800;
    return Math.max(20, Math.min(MAX_BUCKETS, Math.floor(width / 4)));
  }

  /** Fetches the chart's buckets, one set per kind of test. */
  async function loadBuckets(gen) {
    const sets = await W.kindChart.load(state.filters, bucketCount(), () => state.rows);
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

  function setRows(results) {
    state.rows = results;
    state.ids = new Set(results.map(key));
    noteNames(results);
  }

  /** Shows the page of tests before the test `before` (the newest without). */
  async function showPage(before, gen) {
    state.loading = true;
    renderTable();
    try {
      const { page, more } = await W.api.results(state.filters, PAGE, before || undefined);
      if (gen !== state.generation) return;
      setRows(page);
      state.more = more && Boolean(page[0]?.id);
    } finally {
      if (gen === state.generation) {
        state.loading = false;
        renderTable();
      }
    }
  }

  /** Starts the history over with the current filters: the newest page and the chart. */
  async function reload() {
    const gen = ++state.generation;
    state.loaded = true;
    state.before = [];
    // What is shown stays until the answers replace it (nothing collapses
    // and moves meanwhile); the chart's title says it is loading.
    if (state.buckets) $('chart-title').textContent = `${$('chart-title').textContent.replace(/ \(.*\)$/, '')} (loading…)`;
    else drawChart();
    // The page and the chart are asked for at once; the chart is drawn
    // once the table has its page (resolving when the table has it).
    const chart = W.kindChart.load(state.filters, bucketCount(), () => state.rows).catch(() => []);
    await showPage(null, gen);
    chart.then((sets) => {
      if (gen !== state.generation) return;
      state.buckets = sets;
      drawChart();
    });
  }

  /** The page of tests before the oldest one shown. */
  async function older() {
    if (state.loading || state.rows.length === 0) return;
    state.before.push(state.rows[0].id);
    await showPage(state.rows[0].id, state.generation);
    $('history-card').scrollIntoView({ block: 'start' });
  }

  /** The page newer than this one. */
  async function newer() {
    if (state.loading || state.before.length === 0) return;
    state.before.pop();
    await showPage(state.before[state.before.length - 1], state.generation);
  }

  /** A result recorded just now (from the websocket). */
  function onResult(r) {
    noteNames([r]);
    if (!state.loaded || !matches(r) || state.ids.has(key(r))) return;
    refreshChartSoon();
    // Only the newest page takes new results; it stays one page long.
    if (state.before.length > 0) return;
    state.ids.add(key(r));
    state.rows.push(r);
    if (state.rows.length > PAGE && state.rows[0].id) {
      for (const old of state.rows.splice(0, state.rows.length - PAGE)) state.ids.delete(key(old));
      state.more = true;
    }
    renderTable();
  }

  // ---- Filters ------------------------------------------------------------

  /** Unix seconds of local midnight starting `date` ("YYYY-MM-DD"), plus `days`. */
  function dayStart(date, days) {
    const [y, m, d] = date.split('-').map(Number);
    return Math.floor(new Date(y, m - 1, d + days).getTime() / 1000);
  }

  /** The form's values, as the address keeps them. */
  function formValues() {
    return {
      name: $('name-filter').value.trim(),
      port: $('f-port').value,
      protocol: $('f-protocol').value,
      family: $('f-family').value,
      from: $('f-since').value,
      to: $('f-until').value,
    };
  }

  /** The server's filters of the form's values. */
  function filtersOf(v) {
    const date = (d) => /^\d{4}-\d{2}-\d{2}$/.test(d);
    return {
      name: v.name,
      port: v.port,
      protocol: v.protocol,
      family: v.family,
      since: date(v.from) ? String(dayStart(v.from, 0)) : '',
      until: date(v.to) ? String(dayStart(v.to, 1) - 1) : '',
    };
  }

  /** The address of the history with the form's values. */
  function addressOf(v) {
    const q = new URLSearchParams();
    for (const k of KEYS) if (v[k]) q.set(k, v[k]);
    const s = q.toString();
    return s ? `#/?${s}` : '#/';
  }

  /** The form's values from the address's query. */
  function fromAddress() {
    const q = new URLSearchParams(location.hash.replace(/^[^?]*\??/, ''));
    const v = {};
    for (const k of KEYS) v[k] = (q.get(k) || '').slice(0, 200);
    return v;
  }

  /** Puts values into the form (a select keeps an unknown port as an option). */
  function fillForm(v) {
    $('name-filter').value = v.name;
    if (v.port && ![...$('f-port').options].some((o) => o.value === v.port)) {
      const o = el('option', { text: v.port });
      o.value = v.port;
      $('f-port').append(o);
    }
    $('f-port').value = v.port;
    $('f-protocol').value = v.protocol;
    $('f-family').value = v.family;
    $('f-since').value = v.from;
    $('f-until').value = v.to;
  }

  const same = (a, b) => Object.keys(a).every((k) => a[k] === b[k]);

  /** Applies the form: the address follows it, the history reloads if the filters changed. */
  function apply() {
    clearTimeout(typingTimer);
    const v = formValues();
    const address = addressOf(v);
    if (location.hash !== address && W.router.active() === 'home') {
      history.replaceState(null, '', address);
    }
    const filters = filtersOf(v);
    if (state.loaded && same(filters, state.filters)) return;
    state.filters = filters;
    reload().catch(showError);
  }

  let typingTimer = null;

  /** Applies the form once typing pauses. */
  function applySoon() {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(apply, TYPING_MS);
  }

  /** The history's view is on screen: the filters the address names,
   *  loaded once; resolves when the table has its page. */
  function enter() {
    const v = fromAddress();
    const filters = filtersOf(v);
    if (!state.loaded || !same(filters, state.filters)) {
      fillForm(v);
      state.filters = filters;
      return reload().catch(showError);
    }
    drawChart();
    return Promise.resolve();
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
    if (keep && !ports.map(String).includes(keep)) {
      const o = el('option', { text: keep });
      o.value = keep;
      options.push(o);
    }
    select.replaceChildren(...options);
    select.value = keep;
  }

  function init() {
    const form = $('filters');
    form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
    form.addEventListener('change', apply);
    $('name-filter').addEventListener('input', applySoon);
    form.addEventListener('reset', () => setTimeout(apply, 0));
    $('older').addEventListener('click', () => older().catch(showError));
    $('newer').addEventListener('click', () => newer().catch(showError));
  }

  /** Reloads after a reconnect, if the history was shown. */
  function refresh() {
    return state.loaded ? reload().catch(showError) : Promise.resolve();
  }

  W.history = { init, enter, refresh, onResult, setPorts, drawChart, noteNames, state };
})();
