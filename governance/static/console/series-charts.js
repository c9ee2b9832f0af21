// The deployment page's monitoring charts, drawn with plotly (served by the app from the plotly package): each
// element with data-series2 names the json_script element holding {ytitle, traces, states}. Without JavaScript
// the check-run tables say it all.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-series2]").forEach(function (element) {
    var source = document.getElementById(element.dataset.series2);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var traces = data.traces.map(function (trace) {
      return { type: "scatter", mode: "lines+markers", name: trace.name, x: trace.x, y: trace.y, connectgaps: false };
    });
    Plotly.newPlot(element, traces, {
      height: 260, margin: { l: 48, r: 12, t: 8, b: 40 },
      font: { family: "system-ui, sans-serif", size: 12 },
      yaxis: { title: { text: data.ytitle }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.25 },
    }, { displaylogo: false, responsive: true });
  });
});
