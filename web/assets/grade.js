// webperf3 page: what a result's latency figures mean in plain words, for
// the speed test and the detail view. The grade (`"A+"`..`"F"`, from the
// rise of latency under load) and `good_for` come from the server; here
// they only get their words. Sources: docs/ndt7.md.
'use strict';

(() => {
  const W = (window.webperf3 = window.webperf3 || {});

  const MEANING = {
    'A+': 'The connection reacts as quickly when it is busy as when it is idle.',
    A: 'The connection stays responsive when it is busy.',
    B: 'The connection slows down a little when it is busy.',
    C: 'The connection lags noticeably when it is busy: calls may stutter during a big download.',
    D: 'The connection lags badly when it is busy (bufferbloat): calls and games suffer while data flows.',
    F: 'The connection lags severely when it is busy (bufferbloat): calls and games break up while data flows.',
  };

  /** The uses `good_for` speaks of, in the order they are shown, with the
   *  names a result may give each (compared without case and punctuation). */
  const USES = [
    { label: 'video calls', names: ['videocalls', 'video'] },
    { label: '4K streaming', names: ['4kstreaming', 'streaming', 'streaming4k'] },
    { label: 'online games', names: ['onlinegames', 'gaming', 'games'] },
  ];

  const key = (text) => String(text).toLowerCase().replace(/[^a-z0-9]/g, '');

  /** Each known use and whether `goodFor` names it good: an array of
   *  names, or an object of name → true/false. Null without the data. */
  function uses(goodFor) {
    if (goodFor == null || typeof goodFor !== 'object') return null;
    const named = Array.isArray(goodFor)
      ? goodFor.map(key)
      : Object.entries(goodFor).filter(([, v]) => v === true).map(([k]) => key(k));
    return USES.map((u) => ({ label: u.label, good: u.names.some((n) => named.includes(n)) }));
  }

  /** "a, b and c". */
  function list(words) {
    return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
  }

  /** One sentence from `good_for`: what the connection is good for and not. */
  function goodForText(goodFor) {
    const all = uses(goodFor);
    if (!all) return '';
    const yes = all.filter((u) => u.good).map((u) => u.label);
    const no = all.filter((u) => !u.good).map((u) => u.label);
    if (no.length === 0) return `Good for ${list(yes)}.`;
    if (yes.length === 0) return `Not good enough for ${list(no)} while the line is busy.`;
    return `Good for ${list(yes)}; not for ${list(no)} while the line is busy.`;
  }

  /** The words for a grade, or '' for none. */
  function gradeMeaning(grade) {
    return MEANING[grade] || '';
  }

  /** The rise of loaded over idle latency, in words ("+12 ms under load"). */
  function riseText(result) {
    const idle = result?.latency_idle_ms;
    const loaded = [result?.latency_down_ms, result?.latency_up_ms].filter((v) => typeof v === 'number');
    if (typeof idle !== 'number' || loaded.length === 0) return '';
    const rise = Math.max(0, Math.max(...loaded) - idle);
    return `Latency rose by ${W.fmtNum ? W.fmtNum(rise, rise < 10 ? 1 : 0) : rise.toFixed(0)} ms under load.`;
  }

  W.grade = { gradeMeaning, goodForText, riseText, uses };
})();
