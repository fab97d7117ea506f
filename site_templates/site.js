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
  // Filter the list of days by date or status.
  var input = document.getElementById("day-filter");
  if (!input) return;
  input.parentNode.hidden = false;
  input.addEventListener("input", function () {
    var query = input.value.trim().toLowerCase();
    document.querySelectorAll("section.month").forEach(function (month) {
      var shown = 0;
      month.querySelectorAll("tr[data-day]").forEach(function (row) {
        var match = !query || row.getAttribute("data-search").toLowerCase().indexOf(query) >= 0;
        row.hidden = !match;
        shown += match ? 1 : 0;
      });
      month.hidden = shown === 0;
    });
  });
})();
