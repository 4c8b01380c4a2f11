// Sortable tables and the address-bar state, in plain JavaScript (no libraries, works from file://).
// Click a heading with data-type="num" or "text" to sort by it; click again to reverse. The first click sorts the
// way the heading's data-first says ("desc" for a metric where higher is better: best first), else ascending.
// The last sort is kept in the address (#sort=<table>:<column>:<asc|desc>), with the Encoders page's filters
// (static/encoders.js), so a copied link opens the same view; it is restored on load. Nothing read from the address
// is used except to pick an existing table, heading or option.
// When the script has run without error it sets data-js-ok="1" on <body>; the browser test checks it.
(function () {
  "use strict";

  var state = {
    params: function () { return new URLSearchParams(location.hash.replace(/^#/, "")); },
    get: function (name) { return this.params().get(name); },
    set: function (name, value) {
      var params = this.params();
      if (value === null || value === undefined || value === "") params.delete(name); else params.set(name, value);
      var text = params.toString(), url = location.pathname + location.search + (text ? "#" + text : "");
      try { history.replaceState(null, "", url); } catch (err) { location.replace(text ? "#" + text : "#"); }
    }
  };
  window.cxrState = state;

  function cellValue(row, index, type) {
    var cell = row.children[index];
    if (!cell) return type === "num" ? NaN : "";
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (type === "num") { var n = parseFloat(raw); return isNaN(n) ? NaN : n; }
    return raw.trim().toLowerCase();
  }

  // Column index of a heading in the last header row (the one whose cells line up with the body).
  function columnIndex(th) { return Array.prototype.indexOf.call(th.parentNode.children, th); }

  function sortTable(table, th, descending) {
    var tbody = table.tBodies[0];
    if (!tbody) return;
    var index = columnIndex(th), type = th.getAttribute("data-type");
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.forEach(function (row, i) { row._order = i; });
    rows.sort(function (a, b) {
      var x = cellValue(a, index, type), y = cellValue(b, index, type), c;
      if (type === "num") {  // empty cells last, whichever the direction
        if (isNaN(x) && isNaN(y)) c = 0; else if (isNaN(x)) return 1; else if (isNaN(y)) return -1; else c = x - y;
      } else { c = x < y ? -1 : x > y ? 1 : 0; }
      if (descending) c = -c;
      return c !== 0 ? c : a._order - b._order;  // stable
    });
    rows.forEach(function (row) { tbody.appendChild(row); });
    var heads = th.parentNode.children;
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  function headings(table) {
    var head = table.tHead;
    if (!head || !head.rows.length) return [];
    return Array.prototype.slice.call(head.rows[head.rows.length - 1].querySelectorAll("th[data-type]"));
  }

  function tableName(table, index) { return table.id || "t" + index; }
  function headingName(th) { return th.getAttribute("data-key") || String(columnIndex(th)); }

  function install(table, name) {
    headings(table).forEach(function (th) {
      th.tabIndex = 0;
      var go = function (event) {
        if (event.target.closest && event.target.closest("a") && event.type === "click") return;  // links still work
        var current = th.getAttribute("aria-sort");
        var descending = current ? current === "ascending" : th.getAttribute("data-first") === "desc";
        sortTable(table, th, descending);
        state.set("sort", name + ":" + headingName(th) + ":" + (descending ? "desc" : "asc"));
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(e); } });
    });
  }

  // The sort named in the address, if it names a table and heading of this page.
  function restore(tables) {
    var parts = (state.get("sort") || "").split(":");
    if (parts.length !== 3) return;
    tables.forEach(function (table, i) {
      if (tableName(table, i) !== parts[0]) return;
      headings(table).forEach(function (th) {
        if (headingName(th) === parts[1]) sortTable(table, th, parts[2] === "desc");
      });
    });
  }

  // Exercise every sort on detached copies so an error shows up at load time (and in the browser test)
  // without changing the order the reader sees.
  function selfCheck(table) {
    var copy = table.cloneNode(true);
    headings(copy).forEach(function (th) { sortTable(copy, th, false); sortTable(copy, th, true); });
  }

  try {
    var tables = Array.prototype.slice.call(document.querySelectorAll("table.sortable"));
    tables.forEach(function (t, i) { install(t, tableName(t, i)); selfCheck(t); });
    restore(tables);
    document.body.setAttribute("data-js-ok", "1");
    document.body.setAttribute("data-sortable-tables", String(tables.length));
  } catch (err) {
    document.body.setAttribute("data-js-error", String(err && err.message || err));
  }
})();
