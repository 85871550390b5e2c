// webperf3 page: devices, one per name a client gave. `#/devices` shows
// every name side by side (the medians of the last 7 and 30 days, a trend,
// how many tests, the latest); `#/device/<name>` one device over time: its
// latest result in large type with its headline, the medians, a chart of
// each kind of test, its newest tests. The figures are the server's
// (`GET /api/devices`); a server without that route is answered from a
// bounded page of recent results, the medians counted here.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { $, el, fmtRate, fmtNum, fmtAgo, fmtDate } = W;

  /** Results read for the figures when the server has no devices route. */
  const FALLBACK_RESULTS = 500;
  /** Newest tests listed on a device's view. */
  const RECENT = 10;

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

  /** A period's figures in one shape: {download, upload, latency, tests}. */
  function period(p) {
    if (!p || typeof p !== 'object') return { download: null, upload: null, latency: null, tests: 0 };
    const pick = (...keys) => keys.map((k) => num(p[k]) ?? num(p[k]?.median)).find((v) => v != null) ?? null;
    return {
      download: pick('download_bps', 'download', 'send_bps', 'down'),
      upload: pick('upload_bps', 'upload', 'receive_bps', 'up'),
      latency: pick('latency_ms', 'latency', 'rtt_ms', 'min_rtt_ms'),
      tests: pick('tests', 'count', 'n') ?? 0,
    };
  }

  /** The median of numbers, or null. */
  function median(values) {
    const v = values.filter((x) => num(x) != null).sort((a, b) => a - b);
    if (v.length === 0) return null;
    const mid = v.length >> 1;
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  }

  /** Devices counted here from a page of recent results (no devices route). */
  async function countHere(name) {
    const since = Math.floor(Date.now() / 1000) - 30 * 86400;
    const { page } = await W.api.results({ since, ...(name != null ? { name } : {}) }, FALLBACK_RESULTS);
    const byName = new Map();
    for (const r of page) {
      if (name != null && r.name !== name) continue;
      const k = r.name ?? null;
      if (!byName.has(k)) byName.set(k, []);
      byName.get(k).push(r);
    }
    const cut = Date.now() / 1000 - 7 * 86400;
    const figures = (list) => ({
      download_bps: median(list.map((r) => r.send_bps)),
      upload_bps: median(list.map((r) => r.receive_bps)),
      latency_ms: median(list.map((r) => r.min_rtt_ms)),
      tests: list.length,
    });
    return [...byName].map(([n, list]) => ({
      name: n, tests: list.length, last: list[list.length - 1],
      days_7: figures(list.filter((r) => r.timestamp >= cut)), days_30: figures(list),
    }));
  }

  /** The list of devices: the server's, else counted here. */
  async function loadDevices() {
    const answer = await W.api.devices();
    if (answer == null) return countHere();
    return Array.isArray(answer) ? answer : (answer.devices || []);
  }

  /** "faster", "slower" or "steady": the last 7 days beside the last 30. */
  function trend(d) {
    const a = period(d.days_7).download ?? period(d.days_7).upload;
    const b = period(d.days_30).download ?? period(d.days_30).upload;
    if (a == null || b == null || b === 0 || period(d.days_7).tests === period(d.days_30).tests) return { text: '—', cls: '' };
    const change = (a - b) / b;
    if (change > 0.1) return { text: `↗ faster (+${Math.round(change * 100)} %)`, cls: 'trend-up' };
    if (change < -0.1) return { text: `↘ slower (${Math.round(change * 100)} %)`, cls: 'trend-down' };
    return { text: '→ steady', cls: '' };
  }

  const rateTd = (bps, cls, field) => el('td', { class: `num ${bps == null ? 'empty' : cls}`, text: fmtRate(bps), data: { field } });

  function deviceRow(d) {
    const w = period(d.days_7);
    const m = period(d.days_30);
    const t = trend(d);
    const last = d.last || null;
    return el('tr', { data: { name: d.name ?? '' } },
      el('td', { class: 'name' }, W.deviceLink(d.name)),
      rateTd(w.download, 'rate-down', 'days_7.download'),
      rateTd(w.upload, 'rate-up', 'days_7.upload'),
      rateTd(m.download, 'rate-down', 'days_30.download'),
      rateTd(m.upload, 'rate-up', 'days_30.upload'),
      el('td', { class: t.cls, text: t.text }),
      el('td', { class: 'num', text: String(d.tests ?? m.tests), data: { field: 'tests' } }),
      el('td', null, last ? W.testLink(last, fmtAgo(last.timestamp), fmtDate(last.timestamp)) : '—'));
  }

  async function enterList() {
    const body = $('devices').tBodies[0];
    try {
      const list = await loadDevices();
      list.sort((a, b) => (b.last?.timestamp ?? 0) - (a.last?.timestamp ?? 0));
      const rows = list.map(deviceRow);
      if (rows.length === 0) {
        const td = el('td', { class: 'empty', text: 'No tests recorded yet.' });
        td.colSpan = 8;
        rows.push(el('tr', null, td));
      }
      body.replaceChildren(...rows);
      $('devices').dataset.state = 'shown';
    } catch (err) {
      const td = el('td', { class: 'empty', text: `Could not load the devices: ${err.message}` });
      td.colSpan = 8;
      body.replaceChildren(el('tr', null, td));
    }
  }

  // ---- One device -----------------------------------------------------------

  let shown = null;
  let redraw = null;

  /** The medians of the last 7 and 30 days as a small table. */
  function mediansTable(d) {
    const row = (label, p, key) => el('tr', null,
      el('th', { scope: 'row', text: label }),
      rateTd(p.download, 'rate-down', `${key}.download`),
      rateTd(p.upload, 'rate-up', `${key}.upload`),
      el('td', { class: 'num', text: p.latency == null ? '—' : `${fmtNum(p.latency, 1)} ms`, data: { field: `${key}.latency` } }),
      el('td', { class: 'num', text: String(p.tests), data: { field: `${key}.tests` } }));
    const t = el('table', { class: 'grid medians' },
      el('caption', { text: 'Medians' }),
      el('thead', null, el('tr', null,
        el('th', { scope: 'col', text: 'Period' }),
        ...['Download', 'Upload', 'Latency', 'Tests'].map((h) => el('th', { scope: 'col', class: 'num', text: h })))),
      el('tbody', null, row('Last 7 days', period(d.days_7), 'days_7'), row('Last 30 days', period(d.days_30), 'days_30')));
    return el('div', { class: 'scroll' }, t);
  }

  /** Unix seconds of local midnight starting `date` ("YYYY-MM-DD"). */
  function midnight(date) {
    const [y, m, d] = String(date).split('-').map(Number);
    return new Date(y, m - 1, d).getTime() / 1000;
  }

  /** The device's chart sets: the server's days (`series`: per day the
   *  figures of each kind), else the buckets of its name. */
  async function chartSets(name, answer, count) {
    const days = answer && Array.isArray(answer.series) ? answer.series : null;
    if (days) {
      return W.kindChart.KINDS.map((k) => ({
        ...k,
        list: days.filter((day) => day.kinds && day.kinds[k.kind]?.tests > 0).map((day) => {
          const f = day.kinds[k.kind];
          const t0 = midnight(day.date);
          const q = (v) => (v ? { min: v.low ?? v.median, mean: v.median, max: v.high ?? v.median } : null);
          return { t0, t1: t0 + 86400, count: f.tests, down: q(f.download_bps), up: q(f.upload_bps) };
        }).filter((b) => Number.isFinite(b.t0) && (b.down || b.up)),
      })).filter((s) => s.list.length > 0);
    }
    return W.kindChart.load({ name }, count, () => []);
  }

  async function enterOne(name) {
    const box = $('device');
    window.scrollTo(0, 0);
    shown = name;
    redraw = null;
    box.dataset.state = 'loading';
    box.replaceChildren(el('section', { class: 'card' }, el('h2', { class: 'detail-name', text: name }), el('p', { class: 'hint', text: 'Loading…' })));
    try {
      const answer = await W.api.devices(name);
      const d = answer && !answer.missing && answer.name !== undefined
        ? answer
        : (Array.isArray(answer) ? answer.find((x) => x.name === name) : null) || (await countHere(name))[0];
      const { page } = await W.api.results({ name }, RECENT * 4);
      if (shown !== name) return;
      const recent = page.filter((r) => r.name === name).slice(-RECENT).reverse();
      const last = d?.last || recent[0] || null;
      const canvas = el('canvas', { class: 'device-chart' });
      canvas.id = 'device-chart';
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', `${name}: the median rate per time span, per kind of test`);
      const legend = el('div', { class: 'legend' });
      const caption = el('figcaption', { text: 'The last 30 days' });
      const tbody = el('tbody', null, ...recent.map(W.resultRow));
      box.replaceChildren(
        el('section', { class: 'card' },
          el('div', { class: 'section-head' },
            el('h2', { class: 'detail-name', text: name }),
            el('a', { class: 'button', href: '#/devices', text: '← Devices' })),
          last ? W.bigRates(last) : el('p', { class: 'hint', text: 'No tests in the last 30 days.' }),
          last?.headline ? el('p', { class: 'headline', text: last.headline }) : null,
          last ? el('p', { class: 'hint', text: `Latest test ${fmtAgo(last.timestamp)} (${fmtDate(last.timestamp)}); ${d?.tests ?? recent.length} tests in all.` }) : null,
          d ? mediansTable(d) : null),
        el('section', { class: 'card' }, el('h3', { text: 'Has the speed changed?' }),
          el('figure', { class: 'chart' }, caption, canvas, legend)),
        el('section', { class: 'card' },
          el('div', { class: 'section-head' }, el('h3', { text: 'Newest tests' }),
            el('a', { class: 'button', href: `#/?name=${encodeURIComponent(name)}`, text: 'All in the history' })),
          el('table', { class: 'results history' },
            el('thead', null, el('tr', null, ...['Name', 'Download', 'Upload', 'Test'].map((h, i) => el('th', { scope: 'col', class: i === 1 || i === 2 ? 'num' : '', text: h })))),
            tbody)));
      box.dataset.state = 'shown';
      const sets = await chartSets(name, answer, Math.max(20, Math.min(240, Math.floor((canvas.clientWidth || 800) / 4))));
      if (shown !== name) return;
      const days = answer && Array.isArray(answer.series) && answer.series.length ? answer.series : null;
      const span = days ? `The last ${days.length} days, the median of each day` : 'Over time';
      const range = days ? [midnight(days[0].date), midnight(days[days.length - 1].date) + 86400] : undefined;
      redraw = () => W.kindChart.draw(canvas, legend, caption, span, sets, range);
      redraw();
    } catch (err) {
      if (shown !== name) return;
      box.dataset.state = 'missing';
      box.replaceChildren(el('section', { class: 'card' },
        el('h2', { text: 'Could not load this device' }),
        el('p', { class: 'hint', text: err.message })));
    }
  }

  function init() {
    W.router.register('devices', { element: $('view-devices'), enter: enterList });
    W.router.register('device', { element: $('view-device'), enter: enterOne, leave: () => { shown = null; } });
    let timer = null;
    window.addEventListener('resize', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { if (W.router.active() === 'device') redraw?.(); }, 100);
    });
  }

  W.devices = { init, period, trend, redraw: () => redraw?.() };
})();
