// Refreshes the progress counts of the broadcasts on the page in place, every 3 seconds, while
// any of them is still scheduled or sending. Without JavaScript the page reloads itself
// (a meta refresh) instead; nothing else on the screens needs a script.
(function () {
  "use strict";
  var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-progress-url]"));
  function update(box, p) {
    ["percent", "delivered", "failed", "waiting", "total", "state_label"].forEach(function (k) {
      var el = box.querySelector('[data-field="' + k + '"]');
      if (el) { el.textContent = String(p[k]); }
    });
    var bar = box.querySelector("progress");
    if (bar) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
    if (!p.live) { box.removeAttribute("data-live"); }
  }
  function tick() {
    var live = boxes.filter(function (b) { return b.hasAttribute("data-live"); });
    if (!live.length) { return; }
    Promise.all(live.map(function (box) {
      return fetch(box.getAttribute("data-progress-url"), {credentials: "same-origin"})
        .then(function (r) {
          // Signed out meanwhile (sent to the sign-in screen): stop asking.
          if (r.redirected || r.status !== 200) { box.removeAttribute("data-live"); return; }
          return r.json().then(function (p) { update(box, p); });
        })
        .catch(function () { /* try again on the next tick */ });
    })).then(function () { window.setTimeout(tick, 3000); });
  }
  window.setTimeout(tick, 3000);
}());
