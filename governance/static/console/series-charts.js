// The deployment page's monitoring charts, drawn with plotly (served by the app from the plotly package): each
// element with data-series2 names the json_script element holding {ytitle, traces, states}. Without JavaScript
// the check-run tables say it all.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-series2]").forEach(function (element) {
    var source = document.getElementById(element.dataset.series2);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    // Shares and scores on the left axis; counts (e.g. row_count) on their own axis on the right.
    var shares = data.traces.some(function (trace) { return !trace.counts; });
    var counted = shares && data.traces.some(function (trace) { return trace.counts; });
    var traces = data.traces.map(function (trace) {
      return { type: "scatter", mode: "lines+markers", name: trace.name, x: trace.x, y: trace.y, connectgaps: false,
               yaxis: trace.counts && shares ? "y2" : "y" };
    });
    var layout = {
      height: 360, margin: { l: 52, r: counted ? 60 : 12, t: 8, b: 100 },
      font: { family: "system-ui, sans-serif", size: 12 },
      xaxis: { type: "category", tickangle: -30, automargin: true },
      yaxis: { title: { text: data.ytitle }, rangemode: "tozero" },
      legend: { orientation: "h", x: 0, y: -0.42, yanchor: "top" },
    };
    if (counted) layout.yaxis2 = { title: { text: "count" }, overlaying: "y", side: "right", rangemode: "tozero" };
    Plotly.newPlot(element, traces, layout, { displaylogo: false, responsive: true });
  });
});
