/* Médicobus live map (templates/fleet_map.html): the vehicles, their stops of the day and
   the routes driven so far, drawn with the vendored Leaflet from the JSON at data-feed.
   Polled every few seconds with the last ETag (unchanged: a 304 of a few bytes), not while
   the page is hidden. The server words every text (French · English): this script only
   puts them in place. Markers and routes need no tiles: with the tile server out of reach
   they are drawn all the same, and a note says the background is missing. No framework. */
(function () {
  "use strict";
  var box = document.getElementById("fleet-map");
  if (!box || !window.L || !window.fetch) { return; }
  var EVERY = 3000;
  var FRANCE = [46.6, 2.4];
  var feed = box.getAttribute("data-feed");
  var tilesNote = document.getElementById("map-tiles-note");
  var feedNote = document.getElementById("map-feed-note");

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; });
  }

  function attribution() {
    var text = escapeHtml(box.getAttribute("data-attribution"));
    var url = box.getAttribute("data-attribution-url");
    return url ? '<a href="' + escapeHtml(url) + '">' + text + "</a>" : text;
  }

  /* Leaflet stops a tile's download by pointing it to a data: image, which this site's
     Content-Security-Policy refuses (images come from here and the tile server only):
     taking its src away stops it as well. */
  var Tiles = L.TileLayer.extend({
    _removeTile: function (key) {
      var tile = this._tiles[key];
      if (tile) { tile.el.removeAttribute("src"); }
      return L.GridLayer.prototype._removeTile.call(this, key);
    },
    _abortLoading: function () {
      var layer = this;
      Object.keys(this._tiles).forEach(function (key) {
        var tile = layer._tiles[key];
        if (tile.coords.z !== layer._tileZoom && !tile.el.complete) { layer._removeTile(key); }
      });
    }
  });

  var maxZoom = parseInt(box.getAttribute("data-max-zoom"), 10) || 19;
  var map = L.map(box, { maxZoom: maxZoom }).setView(FRANCE, 5);
  var tiles = new Tiles(box.getAttribute("data-tiles"), {
    maxZoom: maxZoom, attribution: attribution()
  }).addTo(map);
  var failed = false;
  tiles.on("loading", function () { failed = false; });
  tiles.on("tileerror", function () { failed = true; tilesNote.hidden = false; });
  tiles.on("load", function () { tilesNote.hidden = !failed; });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function lines(title, rest) {
    var div = el("div", "map-popup");
    div.appendChild(el("strong", "", title));
    rest.forEach(function (t) { if (t) { div.appendChild(el("div", "", t)); } });
    return div;
  }

  var vehicles = {}, stops = {}, routes = {};  /* Leaflet layers by vehicle id, visit id */

  function vehicleIcon(v) {
    var root = el("span", "map-vehicle-mark");
    root.setAttribute("data-vehicle", v.id);
    root.appendChild(el("span", "map-vehicle-dot"));
    root.appendChild(el("span", "map-vehicle-name", v.name));
    return L.divIcon({ className: "map-vehicle presence-" + v.presence, html: root,
                       iconSize: null });
  }

  function stopIcon(s) {
    var mark = el("span", "map-stop status-" + s.status, String(s.n));
    mark.setAttribute("data-visit", s.visit);
    return L.divIcon({ className: "map-stop-icon", html: mark, iconSize: null });
  }

  /* Put `items` on the map as `layers` (by key): new ones made, present ones updated,
     missing ones removed. */
  function sync(layers, items, key, make, update) {
    var seen = {};
    items.forEach(function (item) {
      var k = key(item);
      seen[k] = true;
      if (layers[k]) { update(layers[k], item); } else { layers[k] = make(item).addTo(map); }
    });
    Object.keys(layers).forEach(function (k) {
      if (!seen[k]) { map.removeLayer(layers[k]); delete layers[k]; }
    });
  }

  function vehiclePopup(v) {
    return lines(v.name, [v.presence_text, v.status_text]);
  }

  function stopPopup(s) {
    return lines(s.n + ". " + s.commune, [s.place, "Prévu · planned " + s.hours, s.status_text,
                                          s.eta_text]);
  }

  function render(data) {
    var placed = data.vehicles.filter(function (v) { return v.position; });
    sync(routes, data.vehicles.filter(function (v) { return v.route.length > 1; }),
      function (v) { return v.id; },
      function (v) { return L.polyline(v.route, { className: "map-route", interactive: false }); },
      function (line, v) { line.setLatLngs(v.route); });
    sync(vehicles, placed, function (v) { return v.id; },
      function (v) {
        var pos = [v.position.lat, v.position.lon];
        var m = L.marker(pos, { icon: vehicleIcon(v), zIndexOffset: 1000, keyboard: true,
                                title: v.name });
        m.presence = v.presence;
        return m.bindPopup(vehiclePopup(v));
      },
      function (m, v) {
        m.setLatLng([v.position.lat, v.position.lon]);
        if (m.presence !== v.presence) { m.presence = v.presence; m.setIcon(vehicleIcon(v)); }
        m.setPopupContent(vehiclePopup(v));
      });
    var all = [];
    data.vehicles.forEach(function (v) { all = all.concat(v.stops); });
    sync(stops, all, function (s) { return s.visit; },
      function (s) {
        var m = L.marker([s.lat, s.lon], { icon: stopIcon(s), title: s.n + ". " + s.commune });
        m.status = s.status;
        return m.bindPopup(stopPopup(s));
      },
      function (m, s) {
        if (m.status !== s.status) { m.status = s.status; m.setIcon(stopIcon(s)); }
        m.setPopupContent(stopPopup(s));
      });
    if (!render.fitted) {  /* once: then the person's pan and zoom are left alone */
      var points = all.map(function (s) { return [s.lat, s.lon]; });
      placed.forEach(function (v) { points.push([v.position.lat, v.position.lon]); });
      data.vehicles.forEach(function (v) { points = points.concat(v.route); });
      if (points.length) {
        /* room on the right for the vehicles' names, written east of their dots */
        map.fitBounds(points, { paddingTopLeft: [24, 24], paddingBottomRight: [110, 24],
                                maxZoom: Math.min(14, maxZoom) });
        render.fitted = true;
      }
    }
  }

  var etag = null;  /* of what is drawn */
  function poll() {
    if (document.hidden) { window.setTimeout(poll, EVERY); return; }
    var headers = etag ? { "If-None-Match": etag } : {};
    var tag = null;
    fetch(feed, { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (r) {
        if (r.status === 401) {
          window.location.href = "/fleet/login?next=" + encodeURIComponent(window.location.pathname);
          return null;
        }
        if (r.status === 304) { feedNote.hidden = true; return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        tag = r.headers.get("ETag");
        return r.json();
      })
      .then(function (data) {
        if (data) { render(data); etag = tag; feedNote.hidden = true; }
      })
      .catch(function () { feedNote.hidden = false; })  /* keep what is drawn; try again */
      .then(function () { window.setTimeout(poll, EVERY); });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { map.invalidateSize(); }
  });
  poll();
}());
