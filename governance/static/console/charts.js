// Draws the console's charts with plotly (served by the app from the plotly package): each element with
// data-series names the json_script element holding its traces. Without JavaScript the tables say it all.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-series]").forEach(function (element) {
    var source = document.getElementById(element.dataset.series);
    if (!source) return;
    var traces = JSON.parse(source.textContent).map(function (trace) {
      return { type: "scatter", mode: "lines+markers", name: trace.name, x: trace.x, y: trace.y, connectgaps: false };
    });
    Plotly.newPlot(element, traces, {
      height: 260, margin: { l: 48, r: 12, t: 8, b: 40 },
      font: { family: "system-ui, sans-serif", size: 12 },
      yaxis: { title: { text: "drift score" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.25 },
    }, { displaylogo: false, responsive: true });
  });
});
