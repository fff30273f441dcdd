/*
 * Trail Admin Portal, for the page that embeds it (docs/EMBEDDING.md).
 *
 *   <iframe src="PORTAL LINK" data-trail-portal title="Audit log"></iframe>
 *   <script src="https://trail.example.com/portal/embed.js" defer></script>
 *
 * Sizes each iframe marked data-trail-portal to the height of the portal
 * page inside it. It listens for the portal's messages and believes only
 * those that come from that frame's window and the origin of its src; it
 * runs no code it is sent, uses no inline script or style (it sets the
 * frame's height through the CSSOM, which a host page's CSP permits), and
 * needs no framework. Frames added later (a single-page application's
 * route) need nothing more: they are looked up when their messages arrive.
 */
(function () {
  "use strict";
  var MIN = 200, MAX = 20000;
  var originOf = function (frame) {
    try { return new URL(frame.getAttribute("src") || frame.src, document.baseURI).origin; } catch (e) { return ""; }
  };
  var frames = function () { return document.querySelectorAll("iframe[data-trail-portal]"); };
  window.addEventListener("message", function (ev) {
    var d = ev.data;
    if (!d || typeof d !== "object" || d.type !== "trail-portal:height") return;
    var h = Number(d.height);
    if (!isFinite(h)) return;
    var list = frames();
    for (var i = 0; i < list.length; i++) {
      var f = list[i];
      if (f.contentWindow !== ev.source) continue;
      if (originOf(f) !== ev.origin) return; // the frame went elsewhere: ignore it
      f.style.height = Math.round(Math.min(Math.max(h, MIN), MAX)) + "px";
      f.setAttribute("data-trail-portal-height", String(Math.round(h)));
      return;
    }
  });
  window.TrailPortal = { origin: originOf };
})();
