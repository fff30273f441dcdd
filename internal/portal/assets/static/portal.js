// Trail Admin Portal: progressive enhancement only. Every page works
// without this file.
(function () {
  "use strict";
  // A "Copy" button on each command.
  document.querySelectorAll("pre.cmd").forEach(function (pre) {
    if (!navigator.clipboard) return;
    var b = document.createElement("button");
    b.type = "button";
    b.className = "copy";
    b.textContent = "Copy";
    b.setAttribute("aria-label", "Copy command");
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(pre.innerText.replace(/\s*Copy$/, "")).then(function () {
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = "Copy"; }, 1500);
      });
    });
    pre.appendChild(b);
  });
  // "← Events" returns to the filtered list the admin came from.
  var key = "trail-portal-list";
  try {
    if (window.location.pathname === "/portal/events") {
      sessionStorage.setItem(key, window.location.pathname + window.location.search);
    }
    var list = sessionStorage.getItem(key);
    if (list && list.indexOf("/portal/events") === 0) {
      document.querySelectorAll("a[data-back]").forEach(function (a) { a.href = list; });
    }
  } catch (e) { /* storage disabled: the plain link stays */ }
  // Times: the server writes UTC; here they are shown in the viewer's
  // time zone, in the page's language, with a button to switch to UTC and
  // back (remembered). The zone in use is always named.
  var body0 = document.body;
  var lang = body0.getAttribute("data-lang") || "en";
  var tzKey = "trail-portal-tz";
  var localZone = "";
  try { localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { localZone = ""; }
  var useUTC = function () {
    try { return localStorage.getItem(tzKey) === "utc" || !localZone; } catch (e) { return !localZone; }
  };
  var fmtCache = {};
  var formatter = function (utc) {
    var k = utc ? "utc" : "local";
    if (!fmtCache[k]) {
      var o = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
      if (utc) o.timeZone = "UTC";
      try { fmtCache[k] = new Intl.DateTimeFormat(lang, o); } catch (e) { fmtCache[k] = new Intl.DateTimeFormat("en", o); }
    }
    return fmtCache[k];
  };
  var zoneName = function (utc) {
    if (utc) return body0.getAttribute("data-utc-label") || "UTC";
    var off = "";
    try {
      var parts = new Intl.DateTimeFormat(lang, { timeZone: localZone, timeZoneName: "shortOffset" }).formatToParts(new Date());
      parts.forEach(function (p) { if (p.type === "timeZoneName") off = p.value; });
    } catch (e) { off = ""; }
    return localZone + (off ? " (" + off + ")" : "");
  };
  var showTimes = function () {
    var utc = useUTC();
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      if (!t.hasAttribute("data-utc-text")) t.setAttribute("data-utc-text", t.textContent);
      t.textContent = formatter(utc).format(d);
      t.setAttribute("title", t.getAttribute("datetime"));
    });
    var name = zoneName(utc);
    document.querySelectorAll(".zone-tag, #zone-name").forEach(function (e) { e.textContent = name; });
    document.querySelectorAll(".zone-col").forEach(function (e) {
      if (!e.hasAttribute("data-label")) e.setAttribute("data-label", e.textContent.replace(/\s*\(.*\)\s*$/, ""));
      e.textContent = e.getAttribute("data-label") + " (" + name + ")";
    });
    if (toggle) toggle.textContent = body0.getAttribute(utc ? "data-show-local" : "data-show-utc");
    body0.setAttribute("data-zone", utc ? "UTC" : localZone);
  };
  var toggle = null;
  var zone = document.getElementById("zone");
  if (zone && localZone) {
    toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "link";
    toggle.id = "zone-toggle";
    toggle.addEventListener("click", function () {
      try { localStorage.setItem(tzKey, useUTC() ? "local" : "utc"); } catch (e) { /* not remembered */ }
      showTimes();
    });
    zone.appendChild(toggle);
  }
  showTimes();
  window.trailShowTimes = showTimes;
  // The action picker: a plain list of checkboxes; here it gains a box
  // that narrows the list as one types.
  var list = document.querySelector(".action-list");
  if (list) {
    var search = document.createElement("input");
    search.type = "search";
    search.className = "action-search";
    search.id = "f-action-search";
    search.setAttribute("aria-controls", "f-actions");
    search.setAttribute("aria-label", list.getAttribute("data-search-label") || "Find an action");
    search.placeholder = list.getAttribute("data-search-label") || "Find an action";
    search.autocomplete = "off";
    var none = document.createElement("p");
    none.className = "action-empty";
    none.hidden = true;
    none.setAttribute("role", "status");
    none.textContent = list.getAttribute("data-empty") || "";
    list.parentNode.insertBefore(search, list);
    list.parentNode.insertBefore(none, list.nextSibling);
    var narrow = function () {
      var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      list.querySelectorAll("label.action-option").forEach(function (l) {
        var hay = (l.getAttribute("data-search") || "").toLowerCase();
        var ok = words.every(function (w) { return hay.indexOf(w) >= 0; });
        l.hidden = !ok;
        if (ok) shown++;
      });
      none.hidden = shown > 0;
    };
    search.addEventListener("input", narrow);
    // Enter in the box chooses the only action left instead of sending
    // the form half-done.
    search.addEventListener("keypress", function (ev) {
      if (ev.key === "Enter") ev.preventDefault(); // not a submission of the form
    });
    search.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      var left = list.querySelectorAll("label.action-option:not([hidden]) input");
      if (left.length === 1) { left[0].checked = true; search.value = ""; narrow(); }
    });
  }
  // Empty filter fields stay out of the URL, so shared links are short.
  var f = document.querySelector("form.filters");
  if (f) {
    f.addEventListener("submit", function () {
      f.querySelectorAll("input").forEach(function (i) {
        if (i.value === "" || i.classList.contains("action-search")) i.disabled = true;
      });
    });
  }
  // Inside an iframe of an allowed site (docs/EMBEDDING.md): the launch
  // page opens the session at once (its link was handed to that frame by
  // the application; a scanner that fetches the link loads it top-level,
  // where the button waits for a person), and every page tells the host
  // page its height, to the allowed origins only, so that the host's
  // embed.js sizes the frame to it.
  if (body0.hasAttribute("data-embedded") && window.parent !== window) {
    var auto = document.querySelector("form[data-autolaunch]");
    if (auto) {
      auto.submit();
    }
    var origins = (body0.getAttribute("data-frame-origins") || "").split(" ").filter(Boolean);
    if (window.location.ancestorOrigins && window.location.ancestorOrigins.length) {
      var top0 = window.location.ancestorOrigins[0];
      if (origins.indexOf(top0) >= 0) origins = [top0];
    }
    var lastH = 0;
    var tell = function () {
      var h = Math.ceil(document.documentElement.scrollHeight);
      if (h === lastH) return;
      lastH = h;
      origins.forEach(function (o) {
        window.parent.postMessage({ type: "trail-portal:height", height: h }, o);
      });
    };
    if (window.ResizeObserver) new ResizeObserver(tell).observe(document.body);
    window.addEventListener("load", tell);
    tell();
  }
  // The live view: new events arrive over Server-Sent Events and go on
  // top of the list. Without this script the page is a list to refresh.
  var status = document.getElementById("live-status");
  var body = document.querySelector("#live-events tbody");
  if (status && body && status.getAttribute("data-stream") && window.EventSource) {
    var maxRows = 200;
    // The status lines come translated from the page (live.tmpl); {n}
    // stands for a count.
    var say = function (name, n) { status.textContent = (status.getAttribute("data-say-" + name) || "").replace("{n}", n); };
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
      var td = function (col) { var c = document.createElement("td"); c.setAttribute("data-label", status.getAttribute("data-col-" + col) || ""); tr.appendChild(c); return c; };
      var t = td("time");
      t.className = "time";
      var a = document.createElement("a");
      a.href = "/portal/events/" + encodeURIComponent(r.id);
      var tm = document.createElement("time");
      tm.setAttribute("datetime", r.occurred_at);
      tm.textContent = utc(r.occurred_at);
      a.appendChild(tm);
      if (!useUTC()) { var dd = new Date(r.occurred_at); if (!isNaN(dd)) tm.textContent = formatter(false).format(dd); }
      t.appendChild(a);
      td("action").appendChild(el("code", "action", r.action));
      var actor = td("actor");
      // The stream sends a row as the page shows it (live.go, liveRow):
      // Trail's own events done by the vendor come with the vendor's name
      // only, never its key ids or addresses.
      if (r.trail) tr.className += " trail";
      if (r.actor.type === "vendor") {
        actor.appendChild(el("span", "name", status.getAttribute("data-vendor") || r.actor.name || ""));
      } else {
        actor.appendChild(el("span", "name", r.actor.name || r.actor.id));
        actor.appendChild(el("span", "sub", r.actor.type + " · " + r.actor.id));
      }
      var targets = td("targets");
      (r.targets || []).forEach(function (x) {
        targets.appendChild(el("span", "chip", x.type + ": " + (x.name || x.id)));
      });
      if (r.more_targets > 0) targets.appendChild(el("span", "muted", (status.getAttribute("data-more") || "+{n}").replace("{n}", r.more_targets)));
      var loc = td("location");
      loc.setAttribute("dir", "auto");
      loc.textContent = r.location || "";
      return tr;
    };
    var es = new EventSource(status.getAttribute("data-stream"));
    var seen = 0;
    es.addEventListener("open", function () { say("open"); });
    es.addEventListener("event", function (m) {
      var r;
      try { r = JSON.parse(m.data); } catch (e) { return; }
      var empty = body.querySelector("tr.empty-row");
      if (empty) empty.remove();
      body.insertBefore(row(r), body.firstChild);
      while (body.rows.length > maxRows) body.deleteRow(body.rows.length - 1);
      seen++;
      say(seen === 1 ? "one" : "many", seen);
    });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) say("stopped");
      else say("retry");
    });
  }
})();
