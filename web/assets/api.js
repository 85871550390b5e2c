// webperf3 page: every question the page asks the server about recorded
// tests, in one place. The shapes of the answers (SPEC.md "Each test in
// detail", docs/api.md for the bucket route) are read here and nowhere
// else, so a change of field names is a change of this file only.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});

  /** The query string of a filter object: name, port, protocol, family,
   *  since, until (unix seconds); empty values are left out. With `extra`
   *  (a page or buckets) the name is any part of one (`name_part=`). */
  function query(filters, extra) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...filters, ...extra })) {
      if (v != null && v !== '') q.set(k === 'name' && extra ? 'name_part' : k, String(v));
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  /** One page of results: the most recent `limit` matching `filters`
   *  before the test `before` (an id), oldest first, as `{page, more}`
   *  (`more`: older matching tests may exist). */
  async function results(filters, limit, before) {
    try {
      const page = await W.getJSON(`/api/results${query(filters, { limit, before })}`);
      return { page: page.slice(-limit), more: page.length >= limit };
    } catch (err) {
      if (err.status !== 400 || before) throw err;
    }
    // A server from before paging: it knows port, name and since only and
    // answers every matching test; the rest is filtered here.
    const { port, name, since } = filters;
    const all = await W.getJSON(`/api/results${query({ port, name, since })}`);
    const f = filters;
    const keep = all.filter((r) => (!f.until || r.timestamp <= Number(f.until))
      && (!f.protocol || (r.protocol || '').toLowerCase() === f.protocol.toLowerCase())
      && (!f.family || String(W.family(r)) === String(f.family)));
    return { page: keep.slice(-limit), more: false };
  }

  /** One test: `{result, entry, verdict}`. */
  async function detail(id) {
    // The box reads a few details at once and answers 503 beyond that:
    // ask again a few times, a little later each time, before giving up.
    for (let attempt = 0; ; attempt++) {
      try {
        return await W.getJSON(`/api/results/${encodeURIComponent(id)}`);
      } catch (err) {
        if (err.status !== 503 || attempt >= 4) throw err;
        await new Promise((done) => setTimeout(done, 500 * 2 ** attempt));
      }
    }
  }

  /** A {min, mean, max} triple of one direction, or null: the median and
   *  the middle half where the server gives them, else mean and range. */
  function triple(v) {
    if (v == null) return null;
    if (typeof v === 'number') return { min: v, mean: v, max: v };
    const mean = v.median ?? v.mean ?? v.avg ?? null;
    if (mean == null) return null;
    return { min: v.p25 ?? v.q1 ?? v.min ?? mean, mean, max: v.p75 ?? v.q3 ?? v.max ?? mean };
  }

  /** The bucket list of an answer, in the page's shape. */
  function bucketList(list) {
    return (list || []).map((b) => ({
      t0: b.from ?? b.t0 ?? b.start,
      t1: b.to ?? b.t1 ?? b.end,
      count: b.count ?? b.n ?? b.tests ?? 0,
      up: triple(b.up ?? b.upload ?? b.receive ?? b.receive_bps ?? b.upload_bps),
      down: triple(b.down ?? b.download ?? b.send ?? b.send_bps ?? b.download_bps),
    })).filter((b) => Number.isFinite(b.t0) && Number.isFinite(b.t1));
  }

  /** Every name side by side (`GET /api/devices`), or null when the
   *  server has no such route. */
  async function devices(name) {
    try {
      return await W.getJSON(`/api/devices${name != null ? query({ name }) : ''}`);
    } catch (err) {
      if (err.status === 404 && name == null) return null;
      if (err.status === 404) return { missing: true };
      throw err;
    }
  }

  /** Time buckets of the history matching `filters`, at most `count` of
   *  them: `[{t0, t1, count, up: {min, mean, max} | null, down: ...}]`,
   *  oldest first. Rejects when the server has no such route. */
  async function buckets(filters, count) {
    const answer = await W.getJSON(`/api/history/buckets${query(filters, { buckets: count })}`);
    return bucketList(Array.isArray(answer) ? answer : answer.buckets);
  }

  /** The same buckets computed here from `rows` (the results the page
   *  holds), for a server without the bucket route. */
  function bucketsOf(rows, count) {
    if (rows.length === 0) return [];
    const t0 = W.minOf(rows.map((r) => r.timestamp));
    const t1 = W.maxOf(rows.map((r) => r.timestamp)) + 1;
    const n = Math.max(1, Math.min(count, rows.length));
    const width = Math.max(1, (t1 - t0) / n);
    const acc = [];
    const add = (cell, v) => {
      if (v == null) return cell;
      if (!cell) return { min: v, max: v, sum: v, n: 1 };
      cell.min = Math.min(cell.min, v);
      cell.max = Math.max(cell.max, v);
      cell.sum += v;
      cell.n += 1;
      return cell;
    };
    for (const r of rows) {
      const i = Math.min(n - 1, Math.floor((r.timestamp - t0) / width));
      const b = acc[i] || (acc[i] = { t0: t0 + i * width, t1: t0 + (i + 1) * width, count: 0 });
      b.count += 1;
      b.upAcc = add(b.upAcc, r.receive_bps);
      b.downAcc = add(b.downAcc, r.send_bps);
    }
    const done = (c) => (c ? { min: c.min, mean: c.sum / c.n, max: c.max } : null);
    return acc.filter(Boolean).map((b) => ({
      t0: b.t0, t1: b.t1, count: b.count, up: done(b.upAcc), down: done(b.downAcc),
    }));
  }

  W.api = { query, results, detail, buckets, bucketsOf, bucketList, devices };
})();
