// Trail operator console: progressive enhancement only; every page works
// without this file. The live view: new events arrive over Server-Sent
// Events and go on top of the list.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  var body = document.querySelector("#events tbody");
  if (!status || !body || !status.getAttribute("data-stream") || !window.EventSource) return;
  var maxRows = 200;
  var say = function (text) { status.textContent = text; };
  var el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    e.setAttribute("dir", "auto");
    return e;
  };
  var pad = function (n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; };
  var utc = function (s) {
    var d = new Date(s);
    if (isNaN(d)) return s;
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + " " +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." + pad(d.getUTCMilliseconds(), 3);
  };
  var row = function (r) {
    var tr = document.createElement("tr");
    tr.className = "fresh";
    var td = function (label) { var c = document.createElement("td"); c.setAttribute("data-label", label); tr.appendChild(c); return c; };
    var t = td("Time");
    t.className = "time";
    var a = document.createElement("a");
    a.href = "/console/events/" + encodeURIComponent(r.id);
    var tm = document.createElement("time");
    tm.setAttribute("datetime", r.occurred_at);
    tm.textContent = utc(r.occurred_at);
    a.appendChild(tm);
    t.appendChild(a);
    td("Action").appendChild(el("code", "", r.action));
    var actor = td("Actor");
    var who = r.actor || {};
    actor.appendChild(el("span", "", who.name || who.id));
    actor.appendChild(el("span", "sub", who.type + " · " + who.id));
    var targets = td("Targets");
    (r.targets || []).slice(0, 3).forEach(function (x) {
      targets.appendChild(el("span", "chip", x.type + ": " + (x.name || x.id)));
      targets.appendChild(document.createTextNode(" "));
    });
    if ((r.targets || []).length > 3) targets.appendChild(el("span", "muted", "+" + (r.targets.length - 3) + " more"));
    var loc = td("Location");
    loc.setAttribute("dir", "auto");
    loc.textContent = (r.context && r.context.location) || "";
    return tr;
  };
  var es = new EventSource(status.getAttribute("data-stream"));
  var seen = 0;
  es.addEventListener("open", function () { say("Live: new events appear at the top as they are recorded."); });
  es.addEventListener("event", function (m) {
    var r;
    try { r = JSON.parse(m.data); } catch (e) { return; }
    var empty = body.querySelector("tr.empty-row");
    if (empty) empty.remove();
    body.insertBefore(row(r), body.firstChild);
    while (body.rows.length > maxRows) body.deleteRow(body.rows.length - 1);
    seen++;
    say("Live: " + seen + (seen === 1 ? " new event" : " new events") + " since the page opened.");
  });
  es.addEventListener("error", function () {
    if (es.readyState === EventSource.CLOSED) say("The live view stopped. Refresh the page to start it again.");
    else say("Reconnecting…");
  });
})();
