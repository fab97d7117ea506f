// Optional niceties; every page reads fine without them.
(function () {
  "use strict";
  // Examples show where this copy of the dataset is served from, when the catalog has no URL.
  if (/^https?:$/.test(location.protocol)) {
    var root = new URL(document.body.getAttribute("data-root") || "", location.href).href;
    document.querySelectorAll("[data-base]").forEach(function (el) {
      el.textContent = root.replace(/\/$/, "");
    });
  }
  // The explorer reads the published Parquet over http(s); from file:// its note stays.
  var explorer = document.getElementById("explorer");
  if (explorer && /^https?:$/.test(location.protocol)) {
    explorer.querySelector(".explorer-status").textContent = "…";
    var script = document.createElement("script");
    script.type = "module";
    script.src = explorer.getAttribute("data-src");
    document.body.appendChild(script);
  }
})();
