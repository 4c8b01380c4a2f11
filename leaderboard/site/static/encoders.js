// The Encoders page's filters, in plain JavaScript (no libraries, works from file://).
// Each benchmark x data set view is a <section data-view="bench|dataset"> computed by the site builder; the two
// selects show one of them, the search box hides rows whose encoder name does not contain the text.
// Sets data-encoders-js="1" on <body> when it has run; the browser test checks it.
(function () {
  "use strict";
  try {
    var bench = document.getElementById("filter-benchmark");
    var dataset = document.getElementById("filter-dataset");
    var search = document.getElementById("filter-search");
    var views = Array.prototype.slice.call(document.querySelectorAll("section.encoder-view"));
    var none = document.getElementById("no-view");

    function apply() {
      var key = bench.value + "|" + dataset.value, shown = 0, text = search.value.trim().toLowerCase();
      views.forEach(function (view) {
        var on = view.getAttribute("data-view") === key;
        view.hidden = !on;
        if (on) shown++;
        Array.prototype.forEach.call(view.querySelectorAll("tbody tr"), function (row) {
          row.hidden = text !== "" && row.getAttribute("data-name").indexOf(text) < 0;
        });
      });
      none.hidden = shown > 0;
      document.body.setAttribute("data-view", key);
    }

    if (bench && dataset && search) {
      bench.addEventListener("change", apply);
      dataset.addEventListener("change", apply);
      search.addEventListener("input", apply);
      apply();
    }
    document.body.setAttribute("data-encoders-js", "1");
  } catch (err) {
    document.body.setAttribute("data-js-error", String(err && err.message || err));
  }
})();
