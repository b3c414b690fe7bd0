// flares share widget: <script src="https://FLARES/embed.js" async></script> renders the share
// bar into every <div data-flares-url="PAGE"> (optional data-flares-title, data-flares-networks).
//
// Each element gets an iframe of /widget rather than a bar built here from JSON: one renderer
// (server-side, autoescaped) serves script and script-less embeds alike; the page's CSS cannot
// break the bar nor the bar's leak into the page; the sandbox without allow-same-origin gives the
// frame an opaque origin, so it can hold no cookies and cannot navigate the page; no CORS needed.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.URL) return;
  var widget = new URL("widget", script.src);
  var MOUNTED = "data-flares-frame";

  function mount(element) {
    if (element.querySelector("iframe[" + MOUNTED + "]")) return;
    var src = new URL(widget.href);
    src.searchParams.set("url", element.getAttribute("data-flares-url") || "");
    ["title", "networks"].forEach(function (name) {
      var value = element.getAttribute("data-flares-" + name);
      if (value) src.searchParams.set(name, value);
    });
    var frame = document.createElement("iframe");
    frame.setAttribute(MOUNTED, "");
    frame.setAttribute("sandbox", "allow-scripts allow-popups allow-popups-to-escape-sandbox");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = "Share counts";
    // color-scheme equal to the widget's keeps the frame transparent on dark pages.
    frame.style.cssText =
      "display:block;width:100%;height:2.5em;border:0;overflow:hidden;color-scheme:normal";
    frame.src = src.href;
    element.appendChild(frame);
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.flares !== "height" || typeof data.height !== "number") return;
    var frames = document.querySelectorAll("iframe[" + MOUNTED + "]");
    for (var i = 0; i < frames.length; i++) {
      if (frames[i].contentWindow === event.source) {
        frames[i].style.height = Math.max(0, Math.min(data.height, 1000)) + "px";
      }
    }
  });

  function mountAll() {
    document.querySelectorAll("[data-flares-url]").forEach(mount);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
