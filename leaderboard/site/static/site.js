// Sortable tables, in plain JavaScript (no libraries, works from file://).
// Click a heading with data-type="num" or "text" to sort by it; click again to reverse.
// When the script has run without error it sets data-js-ok="1" on <body>; the browser test checks it.
(function () {
  "use strict";

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
      if (type === "num") {
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

  function install(table) {
    headings(table).forEach(function (th) {
      th.tabIndex = 0;
      var go = function (event) {
        if (event.target.closest && event.target.closest("a") && event.type === "click") return;  // links still work
        sortTable(table, th, th.getAttribute("aria-sort") === "ascending");
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(e); } });
    });
  }

  // Exercise every sort on detached copies so an error shows up at load time (and in the browser test)
  // without changing the order the reader sees.
  function selfCheck(table) {
    var copy = table.cloneNode(true);
    headings(copy).forEach(function (th) { sortTable(copy, th, false); sortTable(copy, th, true); });
  }

  try {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (t) { install(t); selfCheck(t); });
    document.body.setAttribute("data-js-ok", "1");
    document.body.setAttribute("data-sortable-tables", String(tables.length));
  } catch (err) {
    document.body.setAttribute("data-js-error", String(err && err.message || err));
  }
})();
