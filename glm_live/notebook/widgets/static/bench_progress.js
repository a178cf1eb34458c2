// BenchProgress: a bar and the running TTFT percentiles of a benchmark.

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-bench");
  el.innerHTML = `<div class="glm-head"><span class="glm-title"></span><span class="glm-status"></span>
    <span class="glm-stats"></span></div><div class="glm-bar"><div></div></div>`;
  const draw = () => {
    const done = model.get("done"), total = model.get("total");
    el.querySelector(".glm-title").textContent = model.get("title");
    el.querySelector(".glm-status").textContent = model.get("status");
    el.querySelector(".glm-status").dataset.status = model.get("status");
    el.querySelector(".glm-bar > div").style.width = `${total ? Math.round((100 * done) / total) : 0}%`;
    const p50 = model.get("ttft_p50_ms"), p99 = model.get("ttft_p99_ms");
    el.querySelector(".glm-stats").textContent = `${done}/${total} requests · ` +
      (p50 >= 0 ? `TTFT p50 ${p50.toFixed(1)} ms · p99 ${p99.toFixed(1)} ms · ` : "") +
      `${model.get("errors")} errors`;
  };
  for (const name of ["done", "total", "errors", "ttft_p50_ms", "ttft_p99_ms", "status", "title"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
