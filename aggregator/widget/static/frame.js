// Report the bar's height to the page that embeds it (embed.js), so its iframe neither clips
// nor leaves a gap, also after a resize wraps the buttons onto more lines.
(function () {
  "use strict";
  var root = document.documentElement;
  function report() {
    var height = Math.ceil(root.getBoundingClientRect().height);
    window.parent.postMessage({ flares: "height", height: height }, "*");
  }
  new ResizeObserver(report).observe(root);
})();
