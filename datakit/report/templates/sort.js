// Click a column header of a sortable table to sort its rows (again: reverse). Cells sort
// by their data-sort value when they have one, else by their number, else by their text.
// A table with two header rows (runs under their arm) sorts by the cells of the last one.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var head = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1] : null;
  if (!head) return;
  Array.prototype.forEach.call(head.cells, function (th, col) {
    th.classList.add("sorts");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(head.cells, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var key = function (row) {
        var c = row.cells[col], v = c.getAttribute("data-sort");
        if (v === null) v = c.textContent.trim();
        var n = parseFloat(v.replace(/,/g, ""));
        return isNaN(n) ? v.toLowerCase() : n;
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
