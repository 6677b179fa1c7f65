/* Tables on a phone. A results table wider than the screen would scroll sideways, and the columns a reader came
   for (the paper's number, the verdict, the reason) would start off-screen. Such a table is shown instead as one
   card per row: each cell on its own line, after its column's header. Tables that fit stay tables; a wider
   window (turning the phone) turns the cards back into a table. */
(function () {
  function labelled(table) {  // each body cell carries its header, its content wrapped once for the card layout
    if (table.dataset.labelled) return;
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.replace(/\s+/g, " ").trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (td, i) {
        var value = document.createElement("span");
        value.className = "cell-value";
        while (td.firstChild) value.appendChild(td.firstChild);
        td.appendChild(value);
        td.setAttribute("data-label", heads[i] || "");
        if (!value.textContent.trim()) td.classList.add("cell-empty");
      });
    });
    table.dataset.labelled = "1";
  }

  function layout() {
    document.querySelectorAll("article table").forEach(function (table) {
      if (!table.querySelector("thead th")) return;
      table.classList.remove("stacked");
      var box = table.parentElement, room = box.clientWidth;
      if (table.scrollWidth > room + 2) {
        labelled(table);
        table.classList.add("stacked");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", layout);
  window.addEventListener("load", layout);
  var pending = null;
  window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(layout, 100); });
})();
