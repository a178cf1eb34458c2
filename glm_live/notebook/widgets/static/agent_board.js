// AgentBoard: one card per agent. Cards appear as agents start; elapsed time ticks locally
// once a second (no kernel traffic for it).

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-board");
  el.innerHTML = `
    <div class="glm-head"><span class="glm-title"></span><span class="glm-status"></span></div>
    <div class="glm-board-cards"></div>
    <div class="glm-error" hidden></div>
    <details><summary>Shared state</summary><div class="glm-state"></div></details>`;
  const $ = (sel) => el.querySelector(sel);
  const cards = new Map();
  let frame = 0;
  const card = (agent) => {
    let node = cards.get(agent.name);
    if (!node) {
      node = document.createElement("div");
      node.className = "glm-card";
      node.innerHTML = `<div class="glm-card-name"></div><div class="glm-bar"><div></div></div>
        <div class="glm-card-meta"></div><div class="glm-card-message"></div>`;
      $(".glm-board-cards").appendChild(node);
      cards.set(agent.name, node);
    }
    return node;
  };
  const elapsed = (a) => {
    if (!a.started) return "";
    const end = a.finished || Date.now() / 1000;
    return `${(end - a.started).toFixed(1)} s`;
  };
  const draw = () => {
    frame = 0;
    $(".glm-title").textContent = model.get("title") || "agents";
    $(".glm-status").textContent = model.get("status");
    $(".glm-status").dataset.status = model.get("status") === "finished" ? "done" : model.get("status");
    for (const a of model.get("agents")) {
      const node = card(a);
      node.dataset.status = a.status;
      node.querySelector(".glm-card-name").textContent = a.name;
      node.querySelector(".glm-bar > div").style.width = `${Math.round(a.progress * 100)}%`;
      node.querySelector(".glm-card-meta").textContent =
        [a.status, `${Math.round(a.progress * 100)}%`, a.step, elapsed(a)].filter(Boolean).join(" · ");
      node.querySelector(".glm-card-message").textContent = a.error || a.message;
    }
    $(".glm-state").textContent = model.get("state");
    const error = model.get("error");
    $(".glm-error").hidden = !error;
    $(".glm-error").textContent = error;
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  for (const name of ["agents", "status", "state", "error", "title"]) model.on(`change:${name}`, schedule);
  const tick = setInterval(() => {
    if (model.get("agents").some((a) => a.status === "running")) schedule();
  }, 1000);
  draw();
  return () => {
    clearInterval(tick);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
