// ConnectionIndicator: a coloured dot, the state in words, RTT and reconnects; details on hover.
// The countdown to the next try is computed here, so it ticks without kernel messages; it
// ticks only while reconnecting (connected and offline are still).

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-conn");
  el.innerHTML = `<span class="glm-dot"></span><span class="glm-conn-text"></span>`;
  const draw = () => {
    const state = model.get("state");
    el.dataset.state = state;
    el.querySelector(".glm-dot").dataset.state = state;
    const rtt = model.get("rtt_ms");
    let words = { open: "connected", connecting: "connecting", reconnecting: "reconnecting", closed: "offline" }[state] || state;
    if (state === "reconnecting") {
      const wait = Math.max(0, model.get("next_try_at") - Date.now() / 1000);
      words += ` (attempt ${model.get("attempt")}, next try in ${wait.toFixed(1)} s)`;
    }
    if (rtt >= 0 && state === "open") words += ` · RTT ${rtt.toFixed(1)} ms`;
    if (model.get("reconnects")) words += ` · ${plural(model.get("reconnects"), "reconnect")}`;
    el.querySelector(".glm-conn-text").textContent = words;
    el.title = [`hub: ${model.get("url")}`, `state: ${state}`, model.get("last_error") && `last error: ${model.get("last_error")}`]
      .filter(Boolean).join("\n");
  };
  for (const name of ["state", "rtt_ms", "reconnects", "attempt", "next_try_at", "last_error", "url"]) {
    model.on(`change:${name}`, draw);
  }
  const tick = setInterval(() => {
    if (model.get("state") === "reconnecting") draw();
  }, 500);
  draw();
  return () => clearInterval(tick);
}

export default { render };
