// webperf3 page: names the view the address asks for on <html>, before the
// page is drawn, so the stylesheet shows that view from the first paint
// (router.js keeps it up to date afterwards). The one script not deferred.
'use strict';
document.documentElement.dataset.view =
  (/^#\/?(test|devices|device|speedtest)(?=[/?]|$)/.exec(location.hash) || [0, 'home'])[1];
