// webperf3 page: one result as a person reads it first, shared by the
// views. A history row is two short lines on a phone: the name (a link to
// its device) and the rates, then when (a link to the test), how and what
// limited it. The rates in large type (↓ download, ↑ upload) head a test's
// detail and a device's view.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { el, fmtRate, fmtDate, fmtProtocol, fmtHealth, fmtUdp, testLink } = W;

  /** The address of one name's device view. */
  function deviceHref(name) {
    return `#/device/${encodeURIComponent(name)}`;
  }

  /** A link to the device view of `name`, or "unnamed" for none. */
  function deviceLink(name) {
    if (name == null || name === '') return el('span', { class: 'unnamed', text: 'unnamed' });
    return el('a', { class: 'device-link', href: deviceHref(name), text: name, title: 'This device over time' });
  }

  /** A rate cell with its arrow: `↓ 941 Mbit/s`. */
  function arrowCell(bps, dir) {
    const cls = dir === 'down' ? 'rate-down' : 'rate-up';
    const td = el('td', { class: `num rate ${bps == null ? 'empty blank' : cls}` });
    if (bps != null) td.append(el('span', { class: 'arrow', text: dir === 'down' ? '↓ ' : '↑ ' }));
    td.append(fmtRate(bps));
    return td;
  }

  /** What a row says after its date: protocol, port, client, warnings. */
  function metaOf(r) {
    const health = fmtHealth(r);
    const where = r.kind === 'probe' ? `this box → ${r.target}` : r.client;
    const udp = r.protocol === 'UDP' && (r.lost_percent != null || r.jitter_ms != null) ? `loss / jitter ${fmtUdp(r)}` : null;
    const port = r.kind === 'probe' || r.port == null ? null : `port ${r.port}`;
    return [fmtProtocol(r), port, where, r.title, udp, health.warn].filter(Boolean).join(' · ');
  }

  /** One history row: name and rates, then the test's when and how. */
  function resultRow(r) {
    const test = el('td', { class: 'test' },
      testLink(r, fmtDate(r.timestamp), 'Show this test in detail'),
      el('span', { class: 'meta', text: ` · ${metaOf(r)}` }));
    if (r.error) test.append(el('span', { class: 'sub failed', text: r.error }));
    else if (r.headline) test.append(el('span', { class: 'sub headline', text: r.headline }));
    return el('tr', { data: { port: r.port ?? '', protocol: r.protocol ?? '' } },
      el('td', { class: 'name' }, deviceLink(r.name)),
      arrowCell(r.send_bps, 'down'),
      arrowCell(r.receive_bps, 'up'),
      test);
  }

  /** The rates of a result in large type: ↓ download, ↑ upload. */
  function bigRates(r) {
    const part = (bps, dir, word) => (bps == null ? null : el('div', { class: `big ${dir === 'down' ? 'rate-down' : 'rate-up'}` },
      el('span', { class: 'big-rate', text: `${dir === 'down' ? '↓' : '↑'} ${fmtRate(bps)}` }),
      el('span', { class: 'big-word', text: word })));
    return el('div', { class: 'big-rates' },
      part(r.send_bps, 'down', 'download'),
      part(r.receive_bps, 'up', 'upload'));
  }

  /** Says above each table in `root` that is wider than its box that it
   *  scrolls sideways (call before the browser draws, so nothing moves). */
  function noteScrolling(root) {
    for (const box of root.querySelectorAll('.scroll')) {
      const wide = box.scrollWidth > box.clientWidth + 1;
      const note = box.previousElementSibling?.classList.contains('scroll-say') ? box.previousElementSibling : null;
      if (wide && !note) box.before(el('p', { class: 'scroll-say', text: 'This table scrolls sideways: swipe for more columns →' }));
      if (!wide && note) note.remove();
      if (wide) {
        box.tabIndex = 0;
        box.setAttribute('role', 'region');
        box.setAttribute('aria-label', 'Table (scrolls sideways)');
      }
    }
  }

  Object.assign(W, { noteScrolling, deviceHref, deviceLink, resultRow, bigRates, metaOf });
})();
