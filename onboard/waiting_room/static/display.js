/* Médicobus waiting room: places the texts the bus sends over Server-Sent Events, and on a
   new call chimes (Web Audio) and, when asked, speaks the call in French (speech
   synthesis). ES5 only: the room's screen may be an old tablet or TV browser. */
(function () {
  "use strict";
  var room = document.getElementById("room");
  if (!room || !window.EventSource) {
    window.setTimeout(function () { window.location.reload(); }, 5000);
    return;
  }
  var last = room.getAttribute("data-call");
  var chime = room.getAttribute("data-chime") === "1";
  var speech = room.getAttribute("data-speech") === "1";
  var ids = { number: "number", room: "room-name", idle: "idle", earlier: "earlier",
              waiting: "waiting", wait: "wait", state: "state" };
  var audio = null;

  function place(texts) {
    for (var key in ids) {
      if (Object.prototype.hasOwnProperty.call(ids, key)) {
        var el = document.getElementById(ids[key]);
        var text = texts[key] || "";
        if (el.textContent !== text) { el.textContent = text; }
        if (text) { el.removeAttribute("hidden"); } else { el.setAttribute("hidden", ""); }
      }
    }
  }

  function ding() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return; }
    try {
      audio = audio || new Context();
      var tones = [659.25, 523.25];  /* E5 then C5: the usual two-tone call */
      for (var i = 0; i < tones.length; i++) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        var at = audio.currentTime + i * 0.45;
        osc.frequency.value = tones[i];
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.5, at + 0.03);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.8);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(at);
        osc.stop(at + 0.85);
      }
    } catch (err) { /* no sound: the number is on screen */ }
  }

  function say(text) {
    if (!window.speechSynthesis || !window.SpeechSynthesisUtterance || !text) { return; }
    var u = new window.SpeechSynthesisUtterance(text);
    u.lang = "fr-FR";
    u.rate = 0.9;
    window.setTimeout(function () { window.speechSynthesis.speak(u); }, 1000);
  }

  function announce() {
    room.className = "flash";
    window.setTimeout(function () { room.className = ""; }, 4000);
  }

  var source = new EventSource(room.getAttribute("data-events"));
  source.onmessage = function (e) {
    var view;
    try { view = JSON.parse(e.data); } catch (err) { return; }
    document.getElementById("conn").setAttribute("hidden", "");
    place(view.texts);
    if (view.call && view.call !== last) {
      announce();
      if (chime) { ding(); }
      if (speech) { say(view.say); }
    }
    last = view.call;
  };
  source.onerror = function () { document.getElementById("conn").removeAttribute("hidden"); };
}());
