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
  // On a phone the filters start folded, unless some are active.
  var box = document.querySelector("details.filters-box");
  if (box && !box.hasAttribute("data-active") && window.matchMedia("(max-width: 560px)").matches) {
    box.open = false;
  }
  // Empty filter fields stay out of the URL, so shared links are short.
  var f = document.querySelector("form.filters");
  if (f) {
    f.addEventListener("submit", function () {
      f.querySelectorAll("input").forEach(function (i) {
        if (i.value === "") i.disabled = true;
      });
    });
  }
})();
