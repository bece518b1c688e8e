// molt dashboard: follow /api/v1/stream and swap in the sections the
// server rendered. It only reads.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function state(on, text) {
    live.textContent = text;
    live.className = "live " + (on ? "on" : "off");
  }
  if (!window.EventSource) {
    state(false, "live updates unavailable: reload to see changes");
    return;
  }
  var es = new EventSource("api/v1/stream?fragments=1");
  es.onopen = function () { state(true, "live"); };
  es.onerror = function () { state(false, "reconnecting…"); };
  es.addEventListener("fragments", function (e) {
    var d = JSON.parse(e.data);
    document.getElementById("fleets").innerHTML = d.fleets;
    document.getElementById("events").innerHTML = d.events;
    var g = document.getElementById("generated");
    g.textContent = d.generated;
    g.setAttribute("datetime", d.generated);
    state(true, "live");
  });
})();
