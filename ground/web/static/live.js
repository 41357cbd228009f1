/* Médicobus: live update of a commune's page through Server-Sent Events.
   ES5 only (old mairie PCs): no arrow functions, no let/const, no template strings.
   The server words every text (ground/web/public/views.py, page_texts) and sends it in
   each event's "page": this script only puts each text into the element of that id. */
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
  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }
  function show(id, visible) {
    var el = $(id);
    if (!el) { return; }
    if (visible) { el.removeAttribute("hidden"); } else { el.setAttribute("hidden", ""); }
  }

  function render(s) {
    var page = s.page, id;
    show("nv", !!s.next_visit);
    show("nv-none", !s.next_visit);
    for (id in page.texts) {
      if (Object.prototype.hasOwnProperty.call(page.texts, id)) {
        setText(id, page.texts[id]);
        show(id, page.texts[id] !== "");
      }
    }
    if ($("nv-status")) { $("nv-status").className = "status status-" + page.status; }

    var rows = $("upcoming-rows");
    if (rows) {
      while (rows.firstChild) { rows.removeChild(rows.firstChild); }
      for (var i = 0; i < page.rows.length; i++) {
        var tr = document.createElement("tr");
        tr.className = "row-" + page.rows[i].status;
        for (var j = 0; j < page.rows[i].cells.length; j++) {
          var td = document.createElement("td");
          td.textContent = page.rows[i].cells[j];
          tr.appendChild(td);
        }
        rows.appendChild(tr);
      }
    }
    show("upcoming", page.rows.length > 0);
    show("upcoming-none", page.rows.length === 0);
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
