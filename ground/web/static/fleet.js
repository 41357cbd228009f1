/* Médicobus fleet dashboard: live without reloading, through Server-Sent Events.
   The server sends every vehicle's tiles already worded (display: {field: {text, state}})
   and the fleet's summary line (summary: {text, state}):
   this script only puts them in place, and on a vehicle's page fetches its charts, alerts
   and codes again (at most every 15 s). No library, nothing from outside. */
(function () {
  "use strict";
  var live = document.getElementById("fleet-live");
  if (!live || !window.EventSource) { return; }
  var panelUrl = live.getAttribute("data-panel");
  var conn = document.getElementById("conn");
  var PANEL_EVERY = 15000;

  function toLogin() {
    window.location.href = "/fleet/login?next=" + encodeURIComponent(window.location.pathname);
  }

  function render(data) {
    data.vehicles.forEach(function (v) {
      Object.keys(v.display).forEach(function (f) {
        var d = v.display[f];
        var sel = '[data-v="' + v.id + '"][data-f="' + f + '"]';
        document.querySelectorAll(sel).forEach(function (el) {
          var target = el.querySelector("dd") || el;
          if (target.textContent !== d.text) { target.textContent = d.text; }
          if (el.classList.contains("tile")) { el.className = "tile tile-" + d.state; }
        });
      });
    });
    var summary = document.getElementById("fleet-summary");
    if (summary && data.summary) {
      if (summary.textContent !== data.summary.text) { summary.textContent = data.summary.text; }
      summary.className = "summary tile-" + data.summary.state;
    }
    if (data.vehicles.length) {
      document.querySelectorAll('[data-v="*"][data-f="updated"]').forEach(function (el) {
        el.textContent = data.vehicles[0].display.updated.text;
      });
    }
  }

  var panelBusy = false, panelLast = 0, panelTimer = null;
  function refreshPanel() {
    var panel = document.getElementById("panel");
    if (!panelUrl || !panel || panelBusy) { return; }
    var wait = panelLast + PANEL_EVERY - Date.now();
    if (wait > 0) {
      if (!panelTimer) {
        panelTimer = window.setTimeout(function () { panelTimer = null; refreshPanel(); }, wait);
      }
      return;
    }
    /* someone is on a button in the panel: do not pull it from under them */
    if (panel.contains(document.activeElement) && document.activeElement !== document.body) {
      return;
    }
    panelBusy = true;
    panelLast = Date.now();
    fetch(panelUrl, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { toLogin(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined) { panel.innerHTML = html; }
    }).catch(function () { /* keep what is shown; the next event tries again */ })
      .then(function () { panelBusy = false; });
  }

  var first = true;
  var source = new EventSource(live.getAttribute("data-events"));
  source.onmessage = function (e) {
    if (conn) { conn.hidden = true; }
    try { render(JSON.parse(e.data)); } catch (err) { return; }
    if (first) { first = false; panelLast = Date.now(); return; } /* the page is fresh */
    refreshPanel();
  };
  source.addEventListener("logout", function () { source.close(); toLogin(); });
  source.onerror = function () {
    if (conn) { conn.hidden = false; }
    /* closed for good (e.g. 401 once the session expired): the page decides where to go */
    if (source.readyState === 2) { window.setTimeout(function () { window.location.reload(); }, 5000); }
  };
}());
