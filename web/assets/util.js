// webperf3 page: the shared helpers every view uses. Building elements
// (text only: everything a client sent goes through textContent, nothing
// here or anywhere in the page assigns innerHTML), formatting numbers and
// dates, and reading the page's colours.
//
// Every file of the page is a plain script adding itself to one namespace,
// `window.webperf3`, loaded in order with `defer`; there is no build step.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});

  const $ = (id) => document.getElementById(id);

  /** Creates an element; `props` may hold class, id, text, title, label (the
   *  phone layout's cell label), href, scope, data (object). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      if (props.class) node.className = props.class;
      if (props.id != null) node.id = props.id;
      if (props.text != null) node.textContent = String(props.text);
      if (props.title != null) node.title = String(props.title);
      if (props.label != null) node.dataset.label = props.label;
      if (props.href != null) node.setAttribute('href', props.href);
      if (props.scope != null) node.setAttribute('scope', props.scope);
      if (props.data) for (const [k, v] of Object.entries(props.data)) node.dataset[k] = String(v);
    }
    for (const child of children) {
      if (child == null || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

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

  /** 1234567 -> "1.23 MB". */
  function fmtBytes(n) {
    if (n == null || !Number.isFinite(n)) return '—';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let v = n;
    let i = 0;
    while (v >= 999.5 && i < units.length - 1) { v /= 1000; i += 1; }
    return `${i === 0 ? v : Number(v.toPrecision(3))} ${units[i]}`;
  }

  /** A plain number with at most `digits` decimals, or "—". */
  function fmtNum(v, digits = 1) {
    if (v == null || !Number.isFinite(v)) return '—';
    return String(Number(v.toFixed(digits)));
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** Unix seconds -> "YYYY-MM-DD HH:MM" in local time. */
  function fmtDate(ts) {
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  /** Unix seconds -> "YYYY-MM-DD HH:MM:SS" in local time. */
  function fmtDateSeconds(ts) {
    return `${fmtDate(ts)}:${pad(new Date(ts * 1000).getSeconds())}`;
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

  /** The address family of a result's client: 6 when it is an IPv6 address. */
  function family(r) {
    return r.client && r.client.includes(':') ? 6 : 4;
  }

  /** The shareable address of one test's detail view. */
  function testHref(id) {
    return `#/test/${encodeURIComponent(id)}`;
  }

  /** A link to a result's detail view around `text`, or the bare text when
   *  the result has no id (a server that does not give ids yet). */
  function testLink(r, text, title) {
    if (!r.id) return el('span', { text, title });
    return el('a', { class: 'detail-link', href: testHref(r.id), text, title });
  }

  /** A table cell with a rate, coloured by direction (`cls`); hidden on
   *  phones when there is none. */
  function rateCell(bps, cls, label) {
    return el('td', { class: `num ${bps == null ? 'empty blank' : cls}`, label, text: fmtRate(bps) });
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  /** The largest of `values` (any length, no spreading into arguments). */
  function maxOf(values, start = -Infinity) {
    let m = start;
    for (const v of values) if (v > m) m = v;
    return m;
  }

  /** The smallest of `values` (any length). */
  function minOf(values, start = Infinity) {
    let m = start;
    for (const v of values) if (v < m) m = v;
    return m;
  }

  /** Fetches JSON; rejects with an Error carrying `status` on a non-2xx answer. */
  async function getJSON(url, options) {
    const response = await fetch(url, { cache: 'no-store', ...options });
    if (!response.ok) {
      let message = `${url}: HTTP ${response.status}`;
      try {
        const body = await response.json();
        if (body && typeof body.error === 'string') message = body.error;
      } catch { /* no JSON body */ }
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return response.json();
  }

  Object.assign(W, {
    $, el, fmtRate, fmtAxis, fmtBytes, fmtNum, pad, fmtDate, fmtDateSeconds, fmtAgo,
    fmtSeconds, fmtUdp, fmtHealth, fmtProtocol, family, testHref, testLink, rateCell, cssVar,
    maxOf, minOf, getJSON,
  });
})();
