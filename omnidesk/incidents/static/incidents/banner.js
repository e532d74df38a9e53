/* The incident banner: the websocket says an incident changed; the banner comes from the server, scoped like the page. */
(function () {
  "use strict";
  var banner = document.getElementById("incident-banner");
  if (!banner || !window.desk) return;
  function refresh() {
    fetch("/api/v1/incidents/banner/", { credentials: "same-origin" }).then(function (r) {
      return r.status === 200 ? r.text() : null;
    }).then(function (html) {
      if (html === null) return;
      banner.innerHTML = html.trim();  // our own server-rendered, autoescaped fragment
      banner.hidden = banner.children.length === 0;
    });
  }
  window.desk.socket("/ws/queue/", function (msg) {
    if (msg.event === "incident.changed") refresh();
  }, function () {});
})();
