// webperf3 page: a small hash router. The address `#/<view>/<rest>` shows
// the element of the view registered as `<view>` (and hides the others);
// `#/` and anything unknown show the dashboard (`home`). A view registers
// with `webperf3.router.register(name, {element, with, enter(rest), leave()})`
// from its own file; `enter` gets the decoded rest of the address (without
// a `?query`, which stays the view's own), `with` names another view whose
// element stays on screen beside it.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});
  const views = new Map();
  let current = null;

  /** The view name and the rest of the current address. */
  function parse() {
    // A view's own options may follow a `?` (#/speedtest?name=...).
    const hash = location.hash.replace(/^#\/?/, '').replace(/\?.*$/, '');
    const slash = hash.indexOf('/');
    const name = slash < 0 ? hash : hash.slice(0, slash);
    let rest = slash < 0 ? '' : hash.slice(slash + 1);
    try { rest = decodeURIComponent(rest); } catch { /* keep it as typed */ }
    return views.has(name) ? { name, rest } : { name: 'home', rest: '' };
  }

  function show() {
    const { name, rest } = parse();
    if (current && current !== name) views.get(current)?.leave?.();
    const also = views.get(name)?.with;
    for (const [other, view] of views) {
      if (view.element) view.element.hidden = other !== name && other !== also;
    }
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    current = name;
    // The stylesheet shows the view named here (index.html names the
    // first one before any script runs, so nothing is drawn twice).
    document.documentElement.dataset.view = name;
    views.get(name)?.enter?.(rest);
  }

  /** Adds a view; shows it at once if the address already names it. */
  function register(name, view) {
    views.set(name, view);
    if (started) show();
  }

  let started = false;

  /** Shows the view the address names, and follows address changes. */
  function start() {
    if (started) return;
    started = true;
    window.addEventListener('hashchange', show);
    show();
  }

  /** The name of the view on screen. */
  function active() {
    return current;
  }

  W.router = { register, start, active };
})();
