// AgentBoard: one card per agent, the run's status badge, and the final report under the cards
// once the run has finished. Cards appear as agents start. Elapsed time ticks here, once a
// second, only while the run is running and only for agents that are running: an agent that
// has ended shows `elapsed` (finished - started, from the kernel) and its clock is stopped.

const RUN_LABELS = { error: "failed" };
const AGENT_LABELS = { error: "failed" };
const RUN_ENDED = new Set(["finished", "cancelled", "error", "interrupted"]);

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-board");
  el.innerHTML = `
    <div class="glm-head"><span class="glm-title"></span><span class="glm-status"></span>
      <span class="glm-stats"></span></div>
    <div class="glm-board-cards"></div>
    <div class="glm-error" hidden></div>
    <div class="glm-report" hidden><div class="glm-report-title">Report</div><div class="glm-report-body"></div></div>
    <details><summary>Shared state</summary><div class="glm-state"></div></details>`;
  const $ = (sel) => el.querySelector(sel);
  const cards = new Map();
  let frame = 0;
  let report = null;
  const card = (agent) => {
    let node = cards.get(agent.name);
    if (!node) {
      node = document.createElement("div");
      node.className = "glm-card";
      node.innerHTML = `<div class="glm-card-top"><span class="glm-card-name"></span></div>
        <div class="glm-bar"><div></div></div>
        <div class="glm-card-meta"></div><div class="glm-card-message"></div>`;
      $(".glm-board-cards").appendChild(node);
      cards.set(agent.name, node);
    }
    return node;
  };
  const runEnded = () => RUN_ENDED.has(model.get("status"));
  const ticking = (a) => a.status === "running" && !runEnded();
  const elapsed = (a) => {
    if (typeof a.elapsed === "number") return `${a.elapsed.toFixed(1)} s`;
    if (!a.started || !ticking(a)) return "";
    return `${Math.max(0, Date.now() / 1000 - a.started).toFixed(1)} s`;
  };
  const draw = () => {
    frame = 0;
    const status = model.get("status");
    el.dataset.status = status === "finished" ? "done" : status;
    $(".glm-title").textContent = model.get("title") || "agents";
    $(".glm-status").textContent = RUN_LABELS[status] || status;
    $(".glm-status").dataset.status = status === "finished" ? "done" : status;
    const agents = model.get("agents");
    const counts = {};
    for (const a of agents) {
      counts[a.status] = (counts[a.status] || 0) + 1;
      const node = card(a);
      node.dataset.status = a.status;
      node.querySelector(".glm-card-name").textContent = a.name;
      node.querySelector(".glm-card-name").title = a.name;
      const pct = `${Math.round(a.progress * 100)}%`;
      node.querySelector(".glm-bar > div").style.width = pct;
      node.querySelector(".glm-card-meta").textContent =
        [AGENT_LABELS[a.status] || a.status, pct, elapsed(a), a.step].filter(Boolean).join(" · ");
      const message = node.querySelector(".glm-card-message");
      message.textContent = a.summary || "";
      message.title = a.message || "";
    }
    $(".glm-stats").textContent = Object.entries(counts).map(([s, n]) => `${n} ${AGENT_LABELS[s] || s}`).join(" · ");
    $(".glm-state").textContent = model.get("state");
    const error = model.get("error");
    $(".glm-error").hidden = !error;
    $(".glm-error").textContent = error;
    const text = model.get("report");
    $(".glm-report").hidden = !text;
    if (text !== report) {
      report = text;
      $(".glm-report-body").innerHTML = text ? renderMarkdown(text, { final: true }) : "";
    }
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  for (const name of ["agents", "status", "state", "error", "title", "report"]) model.on(`change:${name}`, schedule);
  const tick = setInterval(() => {
    if (model.get("agents").some(ticking)) schedule();
  }, 1000);
  draw();
  return () => {
    clearInterval(tick);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
