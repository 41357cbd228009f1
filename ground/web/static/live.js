/* Médicobus: live update of a commune's page through Server-Sent Events.
   ES5 only (old mairie PCs): no arrow functions, no let/const, no template strings.
   Texts mirror the server's (ground/web/app.py: eta_text, etd_text, link_text). */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-events");

  if (!window.EventSource || !url) {
    window.setTimeout(function () { window.location.reload(); }, 60000);
    return;
  }

  function $(id) { return document.getElementById(id); }
  function hm(iso) { return iso ? iso.substr(11, 5) : ""; } /* local time as sent */
  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  function show(id, visible) {
    var el = $(id);
    if (!el) { return; }
    if (visible) { el.removeAttribute("hidden"); } else { el.setAttribute("hidden", ""); }
  }

  function etaText(v) {
    if (!v || v.status === "cancelled") { return ""; }
    if (v.status === "departed") { return v.departed_at ? "Reparti à " + hm(v.departed_at) : ""; }
    if ((v.status === "arrived" || v.status === "consulting") && v.arrived_at) {
      return "Arrivé à " + hm(v.arrived_at);
    }
    return v.eta ? "Arrivée estimée : " + hm(v.eta) : "";
  }
  function etdText(v) {
    if (!v || !v.etd || v.status === "departed" || v.status === "cancelled" ||
        v.status === "unconfirmed") { return ""; }
    return "Départ estimé : " + hm(v.etd);
  }
  function plannedText(v) { return hm(v.planned_arrive) + " \u2013 " + hm(v.planned_depart); }
  function linkText(s) {
    if (!s.link_lost) { return ""; }
    if (s.last_seen_min === null || s.last_seen_min === undefined) {
      return "Liaison avec le bus perdue : aucune position reçue";
    }
    return "Liaison avec le bus perdue : dernière position reçue il y a " + s.last_seen_min + " min";
  }
  function queueText(s) {
    var q = s.queue;
    if (!q) { return ""; }
    var people = q.waiting === 0 ? "Personne en attente"
      : (q.waiting === 1 ? "1 personne en attente" : q.waiting + " personnes en attente");
    var text = people + ", attente estimée " + q.wait_min + " min";
    return q.paused ? text + " (consultations en pause)" : text;
  }
  var HALF_EN = { am: "morning", pm: "afternoon", day: "all day" };

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }

  function render(s) {
    var v = s.next_visit;
    show("nv", !!v);
    show("nv-none", !v);
    if (v) {
      setText("nv-day", v.day_label_fr);
      setText("nv-half", v.half_label_fr);
      setText("nv-half-en", HALF_EN[v.half] || "");
      setText("nv-planned", plannedText(v));
      setText("nv-status", v.label_fr);
      $("nv-status").className = "status status-" + v.status;
      setText("nv-status-en", v.label_en);
      setText("nv-cancel-reason", v.cancel_reason || "");
      show("nv-cancel", !!v.cancel_reason);
      setText("nv-eta", etaText(v));
      show("nv-eta", !!etaText(v));
      setText("nv-etd", etdText(v));
      show("nv-etd", !!etdText(v));
    }
    setText("queue", queueText(s));
    show("queue", !!queueText(s));
    setText("link", linkText(s));
    show("link", !!linkText(s));

    var rows = $("upcoming-rows");
    if (rows) {
      while (rows.firstChild) { rows.removeChild(rows.firstChild); }
      for (var i = 0; i < s.upcoming.length; i++) {
        var u = s.upcoming[i];
        var tr = document.createElement("tr");
        tr.className = "row-" + u.status;
        cell(tr, u.day_label_fr);
        cell(tr, u.half_label_fr);
        cell(tr, plannedText(u));
        cell(tr, u.label_fr + (u.cancel_reason ? " (" + u.cancel_reason + ")" : ""));
        rows.appendChild(tr);
      }
    }
    show("upcoming", s.upcoming.length > 0);
    show("upcoming-none", s.upcoming.length === 0);
    setText("updated", "mis à jour à " + hm(s.generated_at));
  }

  var lastMessage = new Date().getTime();
  var source = new EventSource(url);
  source.onmessage = function (e) {
    lastMessage = new Date().getTime();
    show("conn", false);
    try { render(JSON.parse(e.data)); } catch (err) { /* keep the last good view */ }
  };
  source.onerror = function () { show("conn", true); };
  /* The server sends at least every 30 s: if nothing came for 2 min, reload the page. */
  window.setInterval(function () {
    if (new Date().getTime() - lastMessage > 120000) { window.location.reload(); }
  }, 15000);
}());
