/* One ticket: composer limits from the plugin's capabilities, PII and collision answers, presence. */
(function () {
  "use strict";
  var desk = window.desk, cfg = JSON.parse(document.getElementById("composer-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var text = $("c-text"), identity = $("c-identity"), visibility = $("c-visibility"), counter = $("c-counter");
  var attach = $("c-attach"), files = $("c-files");  // absent when no reply target can send files
  var base = "/api/v1/tickets/" + cfg.ticket + "/";
  var pending = null, pendingError = "";  // the reply awaiting the agent's answer to a 409, and which one

  function option() {
    var id = identity ? parseInt(identity.value, 10) : NaN;
    return cfg.options.filter(function (o) { return o.identity === id; })[0] || null;
  }
  function problem(message, actions) {
    $("c-problem-text").textContent = message;
    $("c-private").hidden = actions.indexOf("private") < 0;
    $("c-anyway").hidden = actions.indexOf("anyway") < 0;
    $("c-problem").hidden = false;
  }
  function clearProblem() { $("c-problem").hidden = true; pending = null; }

  /* --- limits: counter, window, call-back ------------------------------------------------- */
  var measureTimer = null, measureSeq = 0;
  function measure() {
    var o = option();
    if (!o || !o.max_length) { counter.hidden = true; return; }
    var seq = ++measureSeq;
    desk.postForm(cfg.measure_url, { identity: o.identity, text: text.value }).then(function (r) {
      if (seq !== measureSeq || r.status !== 200) return;
      counter.hidden = false;
      counter.textContent = r.data.length + " / " + r.data.limit;
      counter.title = r.data.unit;
      counter.classList.toggle("over", r.data.length > r.data.limit);
      counter.setAttribute("data-length", r.data.length);
    });
  }
  function windowText() {
    var o = option(), el = $("c-window");
    if (!o || !o.window_ends || visibility.value !== "private") { el.hidden = true; return; }
    var now = Date.now(), end = Date.parse(o.window_ends), ext = o.extended_window_ends ? Date.parse(o.extended_window_ends) : null;
    el.hidden = false;
    if (now < end) { el.textContent = "Reply window: " + desk.duration((end - now) / 1000); el.className = "window"; }
    else if (ext && now < ext) { el.textContent = "Standard window closed; human-agent window: " + desk.duration((ext - now) / 1000); el.className = "window soon"; }
    else { el.textContent = "Reply window closed: reach the customer another way."; el.className = "window breached"; }
  }
  function applyOption() {
    var o = option();
    $("c-callback").hidden = !o || o.can_send;
    $("c-send").hidden = !o || !o.can_send;
    $("c-handoff").hidden = !o || !o.handoff || !o.public;
    if (attach) attach.hidden = !o || !o.attachments;
    if (o) {
      visibility.querySelector("option[value=public]").disabled = !o.public;
      visibility.querySelector("option[value=private]").disabled = !o.private;
      visibility.value = (o.visibility === "public" && o.public) || !o.private ? "public" : "private";
    }
    visibility.disabled = !o || !o.can_send;
    measure();
    windowText();
  }
  if (identity) identity.addEventListener("change", applyOption);
  visibility.addEventListener("change", windowText);
  setInterval(windowText, 1000);

  /* --- presence on this ticket ------------------------------------------------------------ */
  var others = {}, typingTimer = null, lastTyping = 0;
  function renderOthers() {
    var el = $("collision"), names = Object.keys(others);
    if (!names.length) { el.hidden = true; el.textContent = ""; return; }
    el.hidden = false;
    el.textContent = names.map(function (id) {
      return others[id].name + (others[id].state === "typing" ? " is typing a reply…" : " is viewing this ticket");
    }).join(" · ");
    el.classList.toggle("typing", names.some(function (id) { return others[id].state === "typing"; }));
  }
  var live = desk.socket("/ws/tickets/" + cfg.ticket + "/", function (msg) {
    if (msg.event === "presence") {
      if (msg.state === "left") delete others[msg.user]; else others[msg.user] = { name: msg.name, state: msg.state };
      renderOthers();
    } else if (msg.event === "ticket.changed") {
      $("changed").hidden = false;
    }
  });
  text.addEventListener("input", function () {
    clearTimeout(measureTimer);
    measureTimer = setTimeout(measure, 120);
    var now = Date.now();
    if (now - lastTyping > 2000) { live.send({ state: "typing" }); lastTyping = now; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { live.send({ state: "viewing" }); lastTyping = 0; }, 4000);
  });

  /* --- sending -------------------------------------------------------------------------- */
  function busy(on) { document.querySelectorAll("#composer button").forEach(function (b) { b.disabled = on; }); }
  function done(message) { desk.flash(message); setTimeout(function () { location.reload(); }, 300); }
  /* with files chosen (and the target able to send them), the same fields go as multipart */
  function replyBody(body) {
    if (!files || attach.hidden || !files.files.length) return body;
    var form = new FormData();
    Object.keys(body).forEach(function (k) { if (body[k] !== undefined && body[k] !== null) form.append(k, body[k]); });
    Array.prototype.forEach.call(files.files, function (f) { form.append("attachments", f, f.name); });
    return form;
  }
  function send(body) {
    busy(true);
    desk.api("POST", base + "replies/", replyBody(body)).then(function (r) {
      busy(false);
      if (r.status === 202) { clearProblem(); done("Reply queued."); return; }
      var d = r.data || {};
      pending = body;
      pendingError = d.error;
      if (d.error === "public_pii") problem(d.detail, option() && option().private ? ["private", "anyway"] : ["anyway"]);
      else if (d.error === "reply_conflict") problem(d.detail, ["anyway"]);
      else { pending = null; problem(d.detail || "The reply could not be sent.", []); }
    });
  }
  $("c-send").addEventListener("click", function () {
    if (!text.value.trim()) { problem("Write something first.", []); return; }
    var o = option();
    send({ text: text.value, visibility: visibility.value, identity: o ? o.identity : undefined, seen_up_to: cfg.seen_up_to });
  });
  $("c-private").addEventListener("click", function () {
    if (!pending) return;
    var body = Object.assign({}, pending, { visibility: "private" });
    visibility.value = "private";
    send(body);
  });
  $("c-anyway").addEventListener("click", function () {
    if (!pending) return;
    var body = Object.assign({}, pending);
    if (pendingError === "public_pii") body.allow_public_pii = true; else body.confirm_conflict = true;
    send(body);
  });
  $("c-dismiss").addEventListener("click", clearProblem);
  $("c-handoff").addEventListener("click", function () {
    if (!text.value.trim()) { problem("Write the private message first; the customer gets a short public acknowledgement.", []); return; }
    busy(true);
    desk.api("POST", base + "handoff/", { private_text: text.value }).then(function (r) {
      busy(false);
      if (r.status === 202) done("Moved to a private conversation.");
      else problem((r.data && r.data.detail) || "Hand-off failed.", []);
    });
  });
  $("c-note").addEventListener("click", function () {
    if (!text.value.trim()) { problem("Write the note first.", []); return; }
    desk.api("POST", base + "notes/", { text: text.value }).then(function (r) {
      if (r.status === 201) done("Note added."); else problem((r.data && r.data.detail) || "Could not add the note.", []);
    });
  });
  $("cb-log").addEventListener("click", function () {
    desk.api("POST", base + "callbacks/", { outcome: $("cb-outcome").value, notes: $("cb-notes").value,
      duration_s: parseInt($("cb-duration").value || "0", 10) }).then(function (r) {
      if (r.status === 201) done("Call-back logged."); else problem((r.data && r.data.detail) || "Could not log the call-back.", []);
    });
  });

  /* --- ticket fields -------------------------------------------------------------------- */
  var form = $("t-update"), initial = {};
  Array.prototype.forEach.call(form.elements, function (el) { if (el.name) initial[el.name] = el.value; });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.value !== initial[el.name]) body[el.name] = el.value === "" ? null : (el.name === "group" || el.name === "assignee" ? parseInt(el.value, 10) : el.value);
    });
    if (!Object.keys(body).length) { desk.flash("Nothing changed."); return; }
    desk.api("PATCH", base, body).then(function (r) {
      if (r.status === 200) done("Ticket updated."); else desk.flash((r.data && r.data.detail) || "Could not update.", "error");
    });
  });

  /* --- merge customers ------------------------------------------------------------------ */
  var q = $("merge-q"), results = $("merge-results"), searchTimer = null;
  q.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      if (q.value.trim().length < 2) { results.innerHTML = ""; return; }
      fetch("/tickets/" + cfg.ticket + "/merge/?q=" + encodeURIComponent(q.value), { credentials: "same-origin" })
        .then(function (r) { return r.text(); }).then(function (html) { results.innerHTML = html; });  // server-rendered, escaped
    }, 200);
  });
  results.addEventListener("click", function (e) {
    var b = e.target.closest("button.merge-into");
    if (!b) return;
    desk.postForm("/tickets/" + cfg.ticket + "/merge/", { other: b.getAttribute("data-customer") }).then(function (r) {
      if (r.status === 200) done(r.data.detail); else desk.flash(r.data.detail || "Merge failed.", "error");
    });
  });

  applyOption();
  var last = document.querySelector("#history .msg:last-of-type");
  if (last) last.scrollIntoView({ block: "nearest" });
})();
