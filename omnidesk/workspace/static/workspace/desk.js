/* omnidesk workspace: what every page shares. No framework, no CDN. */
(function () {
  "use strict";
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : "";
  }
  /* JSON (or FormData) call to our own API with the session cookie and the CSRF header; resolves {status, data}. */
  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRFToken": cookie("csrftoken"), "Accept": "application/json" } };
    if (body instanceof FormData) { opts.body = body; }  // multipart: the browser sets the boundary
    else if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (r) {
      if (r.status === 204) return { status: 204, data: null };
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = { detail: t.slice(0, 300) }; }
        return { status: r.status, data: data };
      });
    });
  }
  function postForm(url, fields) {
    var form = new URLSearchParams();
    Object.keys(fields).forEach(function (k) { form.append(k, fields[k]); });
    return fetch(url, { method: "POST", credentials: "same-origin", body: form,
      headers: { "X-CSRFToken": cookie("csrftoken") } }).then(function (r) {
      return r.json().then(function (d) { return { status: r.status, data: d }; });
    });
  }
  function flash(text, kind) {
    var el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = "flash " + (kind || "info");
    el.hidden = false;
    clearTimeout(flash.t);
    flash.t = setTimeout(function () { el.hidden = true; }, 6000);
  }
  function duration(seconds) {
    var s = Math.abs(Math.round(seconds)), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), sec = s % 60;
    var out = d ? d + "d " + h + "h" : h ? h + "h " + String(m).padStart(2, "0") + "m" : m + "m " + String(sec).padStart(2, "0") + "s";
    return seconds < 0 ? out + " overdue" : out + " left";
  }
  /* Every [data-due] countdown on the page, ticking client-side; red when breached. */
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { el.textContent = "—"; return; }
      var left = (due - now) / 1000;
      el.textContent = duration(left);
      el.classList.toggle("breached", left <= 0);
      el.classList.toggle("soon", left > 0 && left < 900);
    });
  }
  function socket(path, onMessage, onState) {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path, ws = null, closedByUs = false;
    function open() {
      ws = new WebSocket(url);
      ws.onopen = function () { document.body.setAttribute("data-live", "on"); if (onState) onState(true, ws); };
      ws.onmessage = function (e) { try { onMessage(JSON.parse(e.data)); } catch (err) { /* ignore a malformed frame */ } };
      ws.onclose = function (e) {
        document.body.setAttribute("data-live", "off");
        if (onState) onState(false, ws, e.code);
        if (!closedByUs && e.code !== 4401 && e.code !== 4404) setTimeout(open, 2000);
      };
    }
    open();
    return { send: function (obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); },
             close: function () { closedByUs = true; if (ws) ws.close(); } };
  }
  var presence = document.getElementById("presence");
  if (presence) presence.addEventListener("change", function () {
    api("POST", "/api/v1/routing/presence/", { presence: presence.value }).then(function (r) {
      if (r.status === 200) { flash("You are " + r.data.presence + "."); presence.setAttribute("data-current", r.data.presence); }
      else { flash((r.data && r.data.detail) || "Could not change your presence.", "error"); presence.value = presence.getAttribute("data-current"); }
    });
  });
  tick();
  setInterval(tick, 1000);
  window.desk = { api: api, postForm: postForm, flash: flash, tick: tick, socket: socket, duration: duration };
})();
