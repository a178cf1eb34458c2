// MetricsDashboard: percentile tables and two SVG sparklines (TTFT and tokens/s over time).

const fmt = (v) => (v == null ? "–" : v.toFixed(1));

function sparkline(points, index, label) {
  if (!points.length) return `<svg viewBox="0 0 300 90"><text x="4" y="50" font-size="11">${label}: no data yet</text></svg>`;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[index]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y1 = Math.max(...ys) || 1;
  const sx = (x) => 4 + ((x - x0) / (x1 - x0 || 1)) * 292;
  const sy = (y) => 80 - (y / y1) * 66;
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[index]).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 300 90"><text x="4" y="11" font-size="11">${label} (max ${fmt(y1)})</text>` +
    `<path d="${path}" fill="none" stroke="#6b8dd6" stroke-width="1.5"/>` +
    points.map((p) => `<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[index]).toFixed(1)}" r="1.5" fill="#6b8dd6"/>`).join("") +
    `</svg>`;
}

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-dashboard");
  let frame = 0;
  const draw = () => {
    frame = 0;
    const s = model.get("summary") || {};
    const row = (name, p) => `<tr><th>${name}</th><td>${fmt(p?.p50)}</td><td>${fmt(p?.p90)}</td><td>${fmt(p?.p99)}</td></tr>`;
    const points = model.get("series") || [];
    el.innerHTML = `<div class="glm-head"><span class="glm-title">latency</span>
      <span class="glm-stats">${s.requests || 0} requests · ${s.errors || 0} errors · ${s.reconnects || 0} reconnects</span></div>
      <div class="glm-dash">
        <table><tr><th>ms</th><th>p50</th><th>p90</th><th>p99</th></tr>${row("TTFT", s.ttft_ms)}${row("inter-token", s.itl_ms)}</table>
        ${sparkline(points, 1, "TTFT ms")}
        ${sparkline(points, 2, "tokens/s")}
      </div>`;
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  model.on("change:summary", schedule);
  model.on("change:series", schedule);
  draw();
  return () => frame && cancelAnimationFrame(frame);
}

export default { render };
