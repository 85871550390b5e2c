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

  /** The uses `good_for` speaks of, in the order they are shown. */
  const USES = [['video_calls', 'video calls'], ['streaming', '4K streaming'], ['gaming', 'online games']];

  /** Cloudflare's AIM classes, best first, with their words. */
  const CLASSES = [['great', 'Great'], ['good', 'Good'], ['average', 'Fine'], ['poor', 'Poor'], ['bad', 'Bad']];

  /** "a, b and c". */
  function list(words) {
    return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
  }

  /** One line from `good_for` (use → AIM class): "Great for 4K streaming;
   *  poor for video calls and online games." '' without the data. */
  function goodForText(goodFor) {
    if (goodFor == null || typeof goodFor !== 'object') return '';
    const parts = [];
    for (const [cls, words] of CLASSES) {
      const uses = USES.filter(([id]) => goodFor[id] === cls).map(([, label]) => label);
      if (uses.length) parts.push(`${parts.length ? words.toLowerCase() : words} for ${list(uses)}`);
    }
    return parts.length ? `${parts.join('; ')}.` : '';
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

  W.grade = { gradeMeaning, goodForText, riseText };
})();
