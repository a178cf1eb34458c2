// BenchProgress: a bar and the running TTFT percentiles of a benchmark. The bar and the
// status pill take the state's colour; in an end state (done, cancelled, error - labelled
// "failed" -, interrupted) the bar stops where it was.

const LABELS = { error: "failed" };
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-bench");
  el.innerHTML = `<div class="glm-head"><span class="glm-title"></span><span class="glm-status"></span>
    <span class="glm-stats"></span></div><div class="glm-bar"><div></div></div>`;
  const draw = () => {
    const done = model.get("done"), total = model.get("total");
    const status = model.get("status");
    el.dataset.status = status;
    el.querySelector(".glm-title").textContent = model.get("title");
    el.querySelector(".glm-status").textContent = LABELS[status] || status;
    el.querySelector(".glm-status").dataset.status = status;
    el.querySelector(".glm-bar > div").style.width = `${total ? Math.round((100 * done) / total) : 0}%`;
    const p50 = model.get("ttft_p50_ms"), p99 = model.get("ttft_p99_ms");
    el.querySelector(".glm-stats").textContent = `${done}/${plural(total, "request")} · ` +
      (p50 >= 0 ? `TTFT p50 ${ms(p50)} ms · p99 ${ms(p99)} ms · ` : "") +
      plural(model.get("errors"), "error");
  };
  for (const name of ["done", "total", "errors", "ttft_p50_ms", "ttft_p99_ms", "status", "title"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
