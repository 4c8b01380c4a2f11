// The Encoders page's filters, in plain JavaScript (no libraries, works from file://).
// Each benchmark x data set view is a <section data-view="bench|dataset"> computed by the site builder; the two
// selects show one of them, the search box hides rows whose encoder name does not contain the text. The filters are
// kept in the address (#benchmark=…&dataset=…&q=…, through window.cxrState of static/site.js) and restored on load;
// a value there that is not one of the page's options is ignored.
// Sets data-encoders-js="1" on <body> when it has run; the browser test checks it.
(function () {
  "use strict";
  try {
    var bench = document.getElementById("filter-benchmark");
    var dataset = document.getElementById("filter-dataset");
    var search = document.getElementById("filter-search");
    var views = Array.prototype.slice.call(document.querySelectorAll("section.encoder-view"));
    var none = document.getElementById("no-view");
    var state = window.cxrState;

    function choose(select, value) {
      if (value === null) return;
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].value === value) { select.selectedIndex = i; return; }
      }
    }

    function apply() {
      var key = bench.value + "|" + dataset.value, shown = 0, text = search.value.trim().toLowerCase();
      views.forEach(function (view) {
        var on = view.getAttribute("data-view") === key;
        view.hidden = !on;
        if (on) shown++;
        Array.prototype.forEach.call(view.querySelectorAll("tbody tr[data-name]"), function (row) {
          row.hidden = text !== "" && row.getAttribute("data-name").indexOf(text) < 0;
        });
      });
      none.hidden = shown > 0;
      document.body.setAttribute("data-view", key);
    }

    function remember() {
      if (!state) return;
      state.set("benchmark", bench.value === bench.getAttribute("data-default") ? "" : bench.value);
      state.set("dataset", dataset.value === "*" ? "" : dataset.value);
      state.set("q", search.value.trim());
    }

    if (bench && dataset && search) {
      bench.setAttribute("data-default", bench.value);
      if (state) {
        choose(bench, state.get("benchmark"));
        choose(dataset, state.get("dataset"));
        if (state.get("q")) search.value = state.get("q").slice(0, 200);
      }
      [[bench, "change"], [dataset, "change"], [search, "input"]].forEach(function (pair) {
        pair[0].addEventListener(pair[1], function () { apply(); remember(); });
      });
      apply();
    }
    document.body.setAttribute("data-encoders-js", "1");
  } catch (err) {
    document.body.setAttribute("data-js-error", String(err && err.message || err));
  }
})();
