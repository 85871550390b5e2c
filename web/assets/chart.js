// webperf3 page: line charts on a canvas, drawn by our own code. A chart
// has series of points `{x, y, lo, hi, n}` (x in unix seconds or in seconds
// into a test; `lo`/`hi` draw a band around the line, `n` is how many tests
// a point stands for). However many points come in, at most about two per
// pixel column are drawn. Pointing at the chart shows the values there.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const { el, fmtRate, fmtAxis, pad, cssVar, maxOf, minOf } = W;

  /** A "nice" step (1, 2 or 5 × 10^n) for about `count` ticks up to `max`. */
  function niceStep(max, count) {
    const raw = max / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  }

  /** At most `n` points from `points` (sorted by x): consecutive points
   *  merged into their mean, with the band spanning all of them. */
  function reduce(points, n) {
    if (points.length <= n) return points;
    const out = [];
    const per = points.length / n;
    for (let i = 0; i < n; i += 1) {
      const from = Math.floor(i * per);
      const to = Math.min(points.length, Math.floor((i + 1) * per));
      if (to <= from) continue;
      let sum = 0;
      let lo = Infinity;
      let hi = -Infinity;
      let count = 0;
      for (let j = from; j < to; j += 1) {
        const p = points[j];
        sum += p.y;
        lo = Math.min(lo, p.lo ?? p.y);
        hi = Math.max(hi, p.hi ?? p.y);
        count += p.n ?? 1;
      }
      out.push({ x: points[Math.floor((from + to - 1) / 2)].x, y: sum / (to - from), lo, hi, n: count });
    }
    return out;
  }

  /** Formats an x value for an axis or a tip: ISO dates (YYYY-MM-DD),
   *  the time of day when the span is short. */
  function xLabel(kind, span, sameDay) {
    if (kind === 'seconds') return (t) => `${Number(t.toFixed(span < 10 ? 1 : 0))} s`;
    return (t) => {
      const d = new Date(t * 1000);
      const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
      if (span < 900) return `${hm}:${pad(d.getSeconds())}`;
      if (sameDay) return hm;
      return span > 3 * 86400 ? day : `${day} ${hm}`;
    };
  }

  /** Splits sorted points into runs without a gap wider than `gap` (x units). */
  function runs(points, gap) {
    if (!gap) return [points];
    const out = [];
    let run = [];
    for (const p of points) {
      if (run.length && p.x - run[run.length - 1].x > gap) { out.push(run); run = []; }
      run.push(p);
    }
    if (run.length) out.push(run);
    return out;
  }

  /** The tip shown beside a chart (one per figure), created on first use. */
  function tipOf(canvas) {
    let tip = canvas.parentElement.querySelector('.tip');
    if (!tip) {
      tip = el('div', { class: 'tip' });
      tip.hidden = true;
      tip.setAttribute('role', 'status');
      canvas.after(tip);
    }
    return tip;
  }

  /** The point of sorted `points` nearest to `x`. */
  function nearest(points, x) {
    let lo = 0;
    let hi = points.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid].x < x) lo = mid + 1;
      else hi = mid;
    }
    const a = points[Math.max(0, lo - 1)];
    const b = points[lo];
    return Math.abs(a.x - x) <= Math.abs(b.x - x) ? a : b;
  }

  function showTip(canvas, ev) {
    const layout = canvas.wpLayout;
    const tip = tipOf(canvas);
    if (!layout) { tip.hidden = true; return; }
    const rect = canvas.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const x = layout.invX(px);
    const lines = [];
    let at = null;
    for (const s of layout.series) {
      if (s.points.length === 0) continue;
      const p = nearest(s.points, x);
      if (Math.abs(layout.x(p.x) - px) > 40) continue;
      at = at ?? p;
      const fmt = layout.format || fmtRate;
      let text = `${s.label}: ${fmt(p.y)}`;
      if (p.lo != null && p.hi != null && p.hi > p.lo) text += ` (${fmt(p.lo)} – ${fmt(p.hi)})`;
      if (p.n != null && p.n > 1) text += ` · ${p.n} tests`;
      lines.push(text);
    }
    if (!at) { tip.hidden = true; return; }
    const title = layout.tipTitle ? layout.tipTitle(at) : layout.label(at.x);
    tip.replaceChildren(el('strong', { text: title }), ...lines.map((t) => el('div', { text: t })));
    tip.hidden = false;
    const box = canvas.parentElement.getBoundingClientRect();
    const left = Math.min(Math.max(0, ev.clientX - box.left + 12), Math.max(0, box.width - tip.offsetWidth));
    tip.style.left = `${left}px`;
    tip.style.top = `${ev.clientY - box.top + 12}px`;
  }

  function hover(canvas) {
    if (canvas.wpHover) return;
    canvas.wpHover = true;
    canvas.addEventListener('pointermove', (ev) => showTip(canvas, ev));
    canvas.addEventListener('pointerdown', (ev) => showTip(canvas, ev));
    canvas.addEventListener('pointerleave', () => { tipOf(canvas).hidden = true; });
  }

  /**
   * Draws `opts.series` ([{label, color, dash, pattern, band, gap, points}])
   * on `canvas`: `pattern` a line dash, `band` the band's opacity, `gap` the
   * widest x step drawn as a line (wider is a gap: no tests there);
   * `opts.range` ([x0, x1]) an x span to show whole.
   * `opts.kind` is 'time' (x in unix seconds) or 'seconds'; `opts.empty` the
   * text shown without data; `opts.tipTitle(point)` titles the hover tip;
   * `opts.format(y)` writes a value (default: a rate).
   * Sets `data-points` (how many points were drawn) when done.
   */
  function draw(canvas, opts) {
    hover(canvas);
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = cssVar('--muted');

    const budget = Math.max(10, Math.floor(width * 2));
    const series = opts.series.map((s) => ({
      ...s,
      points: reduce(s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
        .sort((a, b) => a.x - b.x), budget),
    }));
    const drawn = series.reduce((n, s) => n + s.points.length, 0);
    canvas.dataset.points = String(drawn);
    if (drawn === 0) {
      canvas.wpLayout = null;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(opts.empty || 'Nothing to plot yet.', width / 2, height / 2);
      canvas.dataset.drawn = 'empty';
      return;
    }

    let maxY = 0;
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const s of series) {
      maxY = maxOf(s.points.map((p) => p.hi ?? p.y), maxY);
      t0 = minOf(s.points.map((p) => p.x), t0);
      t1 = maxOf(s.points.map((p) => p.x), t1);
    }
    maxY = maxY || 1;
    // A span asked for (a device's days) is shown whole, tests or not.
    if (opts.range) {
      t0 = Math.min(t0, opts.range[0]);
      t1 = Math.max(t1, opts.range[1]);
    }
    const kind = opts.kind || 'time';
    if (kind === 'seconds') t0 = Math.min(0, t0);
    if (t1 - t0 < (kind === 'time' ? 60 : 1)) {
      const widen = kind === 'time' ? 30 : 0.5;
      t0 -= widen;
      t1 += widen;
    }
    const step = niceStep(maxY * 1.05, 4);
    const top = Math.ceil((maxY * 1.05) / step) * step;
    const yLabels = [];
    for (let v = 0; v <= top + step / 2; v += step) yLabels.push(v);
    const axis = opts.format || fmtAxis;
    const left = maxOf(yLabels.map((v) => ctx.measureText(axis(v)).width)) + 12;
    const margin = { left, right: 14, top: 10, bottom: 26 };
    const plotW = Math.max(10, width - margin.left - margin.right);
    const plotH = Math.max(10, height - margin.top - margin.bottom);
    const x = (t) => margin.left + ((t - t0) / (t1 - t0)) * plotW;
    const invX = (px) => t0 + ((px - margin.left) / plotW) * (t1 - t0);
    const y = (v) => margin.top + plotH - (v / top) * plotH;

    ctx.strokeStyle = cssVar('--line');
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of yLabels) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(margin.left, yy);
      ctx.lineTo(margin.left + plotW, yy);
      ctx.stroke();
      ctx.fillText(axis(v), margin.left - 6, yy);
    }

    const span = t1 - t0;
    const sameDay = new Date(t0 * 1000).toDateString() === new Date(t1 * 1000).toDateString();
    const label = xLabel(kind, span, sameDay);
    ctx.textBaseline = 'top';
    const sample = ctx.measureText(label(t1)).width + 24;
    // count + 1 labels, each `sample` wide, fit the width.
    const count = Math.max(1, Math.min(6, Math.floor(plotW / sample) - 1));
    let previous = null;
    for (let i = 0; i <= count; i += 1) {
      const t = t0 + (span * i) / count;
      const text = label(t);
      if (text === previous) continue;
      previous = text;
      ctx.textAlign = i === 0 ? 'left' : i === count ? 'right' : 'center';
      ctx.fillText(text, x(t), margin.top + plotH + 7);
    }

    for (const s of series) {
      if (s.points.length === 0) continue;
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      // Where there were no tests the line and the band stop.
      for (const pts of runs(s.points, s.gap)) {
        // The band from each point's low to high value, kept quiet.
        if (pts.some((p) => p.lo != null && p.hi != null && p.hi > p.lo)) {
          ctx.globalAlpha = s.band ?? 0.15;
          ctx.beginPath();
          pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.x), y(p.hi ?? p.y)) : ctx.lineTo(x(p.x), y(p.hi ?? p.y))));
          for (let i = pts.length - 1; i >= 0; i -= 1) ctx.lineTo(x(pts[i].x), y(pts[i].lo ?? pts[i].y));
          ctx.closePath();
          ctx.fill();
          ctx.globalAlpha = 1;
        }
        ctx.lineWidth = 2;
        ctx.lineJoin = 'round';
        ctx.setLineDash(s.pattern || (s.dash ? [6, 4] : []));
        if (s.line !== false && pts.length > 1) {
          ctx.beginPath();
          pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.x), y(p.y)) : ctx.lineTo(x(p.x), y(p.y))));
          ctx.stroke();
        }
        ctx.setLineDash([]);
        // A lone point (a run of one) is a dot, or it would not show.
        if (s.dots !== false && (s.points.length <= 120 || s.line === false || pts.length === 1)) {
          const radius = s.points.length > 60 ? 2 : 3.5;
          for (const p of pts) {
            ctx.beginPath();
            ctx.arc(x(p.x), y(p.y), radius, 0, Math.PI * 2);
            ctx.fill();
          }
        }
      }
    }
    canvas.wpLayout = { series, x, invX, label: xLabel(kind, span, sameDay), tipTitle: opts.tipTitle, format: opts.format };
    canvas.dataset.drawn = 'yes';
  }

  /** A legend: one key per series, in its colour (dashed for `dash`). */
  function legend(box, series) {
    box.replaceChildren(...series.map((s) => {
      const key = el('span', { class: `key${s.dash ? ' dash' : ''}${s.dot ? ' dot' : ''}`, text: s.label });
      key.style.setProperty('--key', s.color);
      return key;
    }));
  }

  W.chart = { draw, legend, reduce, niceStep };
})();
