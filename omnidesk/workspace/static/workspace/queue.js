/* The live queue: the websocket says which tickets changed; the row comes from the server, scoped like the page. */
(function () {
  "use strict";
  var desk = window.desk, rows = document.getElementById("queue-rows"), state = document.getElementById("live-state");

  function dueOf(tr) { var d = Date.parse(tr.getAttribute("data-due")); return isNaN(d) ? Infinity : d; }
  function place(tr) {
    var due = dueOf(tr), created = Date.parse(tr.getAttribute("data-created")) || 0, before = null;
    Array.prototype.some.call(rows.children, function (other) {
      if (other === tr) return false;
      var od = dueOf(other), oc = Date.parse(other.getAttribute("data-created")) || 0;
      if (due < od || (due === od && created < oc)) { before = other; return true; }
      return false;
    });
    rows.insertBefore(tr, before);
  }
  function empty() { document.getElementById("queue-empty").hidden = rows.children.length > 0; }
  function refresh(ticketId, change) {
    fetch("/queue/rows/" + encodeURIComponent(ticketId) + "/", { credentials: "same-origin" }).then(function (r) {
      var old = document.getElementById("ticket-" + ticketId);
      if (r.status !== 200) { if (old) old.remove(); empty(); return null; }
      return r.text().then(function (html) {
        var tmp = document.createElement("tbody");
        tmp.innerHTML = html.trim();  // our own server-rendered, autoescaped row
        var tr = tmp.querySelector("tr");
        if (!tr) return;
        if (old) old.replaceWith(tr);
        place(tr);
        tr.classList.add("flash-row", "change-" + String(change).replace(/[^a-z_:]/gi, ""));
        setTimeout(function () { tr.classList.remove("flash-row"); }, 2500);
        desk.tick();
        empty();
      });
    });
  }
  /* one frame carries every change since the last (at most one frame per 200 ms): one fetch per ticket, its latest change */
  desk.socket("/ws/queue/", function (msg) {
    if (msg.event !== "tickets.changed") return;
    var latest = {};
    msg.changes.forEach(function (c) { latest[c.ticket] = c.change; });
    Object.keys(latest).forEach(function (ticketId) { refresh(ticketId, latest[ticketId]); });
  }, function (up) { state.textContent = up ? "live" : "reconnecting…"; state.className = up ? "live" : "muted"; });

  document.getElementById("next-ticket").addEventListener("click", function () {
    desk.api("POST", "/api/v1/queue/next/").then(function (r) {
      if (r.status === 200 && r.data && r.data.id) { location.href = "/tickets/" + r.data.id + "/"; }
      else if (r.status === 204) { desk.flash("Nothing to take right now."); }
      else { desk.flash((r.data && r.data.detail) || "Could not take a ticket.", "error"); }
    });
  });
})();
