// StreamView: renders an answer as it streams. Text arrives as ordered deltas in `_delta`
// ({seq, text, reasoning}); a missing seq (a reload, a dropped message) asks the kernel for a
// resync, which sends the full text in `text`/`reasoning` with `text_seq`. Rendering happens
// at most once per animation frame, however fast deltas come. In an end state (done,
// cancelled, error - labelled "failed" -, interrupted) the text is rendered as final markdown:
// whatever the stream left open (a table, a code fence) is closed. The answer is rendered
// incrementally (createStreamRenderer, markdown.js): blocks that are complete are rendered once.

const LABELS = { error: "failed" };
const ENDED = new Set(["done", "cancelled", "error", "interrupted"]);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** @type {import("@anywidget/types").Render} */
function render({ model, el }) {
  el.classList.add("glm-live", "glm-stream");
  el.innerHTML = `
    <div class="glm-head">
      <span class="glm-title"></span>
      <span class="glm-badge glm-sim" hidden>simulated</span>
      <span class="glm-status"></span>
      <span class="glm-stats"></span>
      <button class="glm-stop jp-Button jp-mod-styled" type="button" title="Stop this request">Stop</button>
    </div>
    <details class="glm-reasoning" hidden><summary>Reasoning</summary><div class="glm-reasoning-text"></div></details>
    <div class="glm-tools" hidden></div>
    <div class="glm-body"></div>
    <div class="glm-error" hidden></div>
    <div class="glm-detail" hidden></div>`;
  const $ = (sel) => el.querySelector(sel);
  let text = model.get("text");
  let reasoning = model.get("reasoning");
  let seq = model.get("text_seq");
  let frame = 0;
  const body = createStreamRenderer($(".glm-body")); // see markdown.js

  const draw = () => {
    frame = 0;
    const status = model.get("status");
    const ended = ENDED.has(status);
    body.update(text, ended); // only the tail after the last complete block is re-rendered
    const r = $(".glm-reasoning");
    r.hidden = !reasoning;
    $(".glm-reasoning-text").textContent = reasoning;
    el.dataset.status = status;
    $(".glm-title").textContent = model.get("title") || model.get("model") || "answer";
    $(".glm-sim").hidden = !model.get("simulated");
    $(".glm-status").textContent = LABELS[status] || status;
    $(".glm-status").dataset.status = status;
    const rate = model.get("tokens_per_s");
    $(".glm-stats").textContent = plural(model.get("tokens"), "token") + (rate ? ` · ${rate.toFixed(1)} tok/s` : "");
    $(".glm-stop").hidden = status !== "streaming" && status !== "waiting";
    const calls = model.get("tool_calls") || [];
    $(".glm-tools").hidden = !calls.length;
    $(".glm-tools").textContent = calls.map((c) => `⚙ ${c.name}(${c.arguments})`).join("\n");
    const error = model.get("error");
    $(".glm-error").hidden = !error;
    $(".glm-error").textContent = error;
    const detail = status === "error" ? "" : model.get("detail");
    $(".glm-detail").hidden = !detail || !ended;
    $(".glm-detail").textContent = detail;
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  const onDelta = () => {
    const d = model.get("_delta");
    if (!d || typeof d.seq !== "number" || d.seq <= seq) return;
    if (d.seq !== seq + 1) {
      model.send({ type: "resync", have: seq, got: d.seq });
      return;
    }
    text += d.text || "";
    reasoning += d.reasoning || "";
    seq = d.seq;
    schedule();
  };
  const onFull = () => {
    if (model.get("text_seq") < seq) return;
    text = model.get("text");
    reasoning = model.get("reasoning");
    seq = model.get("text_seq");
    schedule();
  };
  $(".glm-stop").addEventListener("click", () => model.send({ type: "stop" }));
  model.on("change:_delta", onDelta);
  model.on("change:text_seq", onFull);
  model.on("change:text", onFull);
  for (const name of ["status", "tokens", "tokens_per_s", "tool_calls", "error", "detail", "title", "model", "simulated"]) {
    model.on(`change:${name}`, schedule);
  }
  const current = model.get("_delta");
  if (current && typeof current.seq === "number" && current.seq > seq) {
    model.send({ type: "resync", have: seq, got: current.seq }); // joined mid-stream
  }
  draw();
  return () => {
    if (frame) cancelAnimationFrame(frame);
    model.off("change:_delta", onDelta);
    model.off("change:text_seq", onFull);
    model.off("change:text", onFull);
  };
}

export default { render };
