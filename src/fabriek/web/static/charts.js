/* Draws every <figure data-chart> with Chart.js from the JSON beside its canvas.
   Without JavaScript the figure's table is the chart (its <details> is open); with it the
   canvas appears and the table folds away under "Show the numbers", still there for
   screen readers and for anyone who wants the figures. */
(function () {
  "use strict";
  if (typeof Chart === "undefined") { return; }
  // Colours with at least 3:1 contrast on white (WCAG 2.1 non-text contrast).
  var PALETTE = ["#0b4f8a", "#b35900", "#2e7d32", "#6a3d9a", "#a0004a", "#005f6b"];
  function draw(figure) {
    var spec = JSON.parse(figure.querySelector("script[type='application/json']").textContent);
    var canvas = figure.querySelector("canvas");
    var datasets = spec.series.map(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      return {
        type: s.kind, label: s.label, data: s.values, backgroundColor: colour,
        borderColor: colour, borderWidth: s.kind === "line" ? 2 : 0,
        borderDash: s.dashed ? [6, 4] : [], pointRadius: 0, stack: s.stack || undefined,
      };
    });
    // The axis of the values: from zero, titled with the unit.
    var value = { stacked: spec.stacked, beginAtZero: true,
                  title: { display: !!spec.unit, text: spec.unit } };
    canvas.hidden = false;
    new Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        locale: spec.locale, animation: false, maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { display: spec.series.length > 1 } },
        scales: spec.horizontal ? { x: value, y: { stacked: spec.stacked } }
                                : { x: { stacked: spec.stacked }, y: value },
      },
    });
    var details = figure.querySelector("details");
    if (details) { details.open = false; }
  }
  function drawAll(root) {
    root.querySelectorAll("figure[data-chart]:not([data-drawn])").forEach(function (f) {
      f.setAttribute("data-drawn", "");
      draw(f);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  // Charts inside parts htmx swaps in are drawn too.
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
})();
