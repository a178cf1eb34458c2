// MetricsDashboard: request counts, percentile tables, and two small SVG charts with axes
// (TTFT and tokens/s per request, over the session's time). Charts appear from the second
// request on; before that a quiet placeholder stands in their place. Colours come from the
// CSS classes (widgets.css), so the charts follow JupyterLab's light and dark themes.

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const ms = (v) => (v == null ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** Round numbers for axis ticks: 0, a step, 2 steps... covering `max`. */
function ticks(max, count = 3) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(+v.toPrecision(12));
  return out;
}

const label = (v) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(2)}`);

/**
 * @param {number[][]} points [t_s, ttft_ms, tokens_per_s] rows
 * @param {number} index the column to draw
 * @param {string} title @param {string} unit
 */
function chart(points, index, title, unit) {
  const W = 300, H = 130, L = 40, R = 8, T = 18, B = 26;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[index]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const xspan = x1 - x0 || 1;
  const yt = ticks(Math.max(...ys));
  const ymax = yt[yt.length - 1] || 1;
  const xt = ticks(xspan).map((v) => v);
  const xmax = xt[xt.length - 1] || 1;
  const sx = (x) => L + ((x - x0) / xmax) * (W - L - R);
  const sy = (y) => H - B - (y / ymax) * (H - T - B);
  const grid = yt.map((v) => `<line class="glm-grid" x1="${L}" x2="${W - R}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}"/>` +
    `<text x="${L - 4}" y="${(sy(v) + 3).toFixed(1)}" text-anchor="end">${label(v)}</text>`).join("");
  const xlabels = xt.map((v) => `<line class="glm-axis" x1="${sx(x0 + v).toFixed(1)}" x2="${sx(x0 + v).toFixed(1)}" y1="${H - B}" y2="${H - B + 3}"/>` +
    `<text x="${sx(x0 + v).toFixed(1)}" y="${H - B + 13}" text-anchor="middle">${label(v)}</text>`).join("");
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[index]).toFixed(1)}`).join(" ");
  const dots = points.length <= 60
    ? points.map((p) => `<circle class="glm-point" cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[index]).toFixed(1)}" r="2"/>`).join("")
    : "";
  const last = ys[ys.length - 1];
  return `<svg class="glm-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${title} (${unit})">` +
    `<text class="glm-chart-title" x="${L}" y="11">${title} (${unit}) · last ${index === 1 ? ms(last) : last.toFixed(1)}</text>` +
    grid +
    `<line class="glm-axis" x1="${L}" x2="${L}" y1="${T - 4}" y2="${H - B}"/>` +
    `<line class="glm-axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>` +
    xlabels +
    `<text x="${W - R}" y="${H - 2}" text-anchor="end">s since the first</text>` +
    `<path class="glm-line" d="${path}"/>${dots}</svg>`;
}

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-dashboard");
  let frame = 0;
  const draw = () => {
    frame = 0;
    const s = model.get("summary") || {};
    const n = s.requests || 0;
    const row = (name, p) => `<tr><th>${name}</th><td>${ms(p?.p50)}</td><td>${ms(p?.p90)}</td><td>${ms(p?.p99)}</td></tr>`;
    const points = model.get("series") || [];
    const parts = [plural(n, "request"), plural(s.errors || 0, "error")];
    if (s.cancelled) parts.push(`${s.cancelled} cancelled`);
    parts.push(plural(s.reconnects || 0, "reconnect"));
    const charts = points.length >= 2
      ? chart(points, 1, "TTFT", "ms") + chart(points, 2, "throughput", "tok/s")
      : `<div class="glm-wait">${n ? "waiting for more requests: charts start at two" : "waiting for requests"}</div>`;
    el.innerHTML = `<div class="glm-head"><span class="glm-title">latency</span>
      <span class="glm-stats">${parts.join(" · ")}</span></div>
      <div class="glm-dash">
        <table><tr><th>ms</th><th>p50</th><th>p90</th><th>p99</th></tr>${row("TTFT", s.ttft_ms)}${row("inter-token", s.itl_ms)}</table>
        ${charts}
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
