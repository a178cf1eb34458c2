// One AG-UI run through the official TypeScript client (@ag-ui/client's HttpAgent), under Node.
//
//   node agui_run.mjs '<json config>'
//
// config: {url, token?, runId?, threadId?, messages?, forwardedProps?, context?,
//          abortAfter?: "<EVENT_TYPE>"   call agent.abortRun() when the first such event arrives,
//          pipeline?: "runAgent" | "explicit",
//          tools?: [{name, description, parameters, returns}]   frontend tools: sent in every
//                  run's `tools`; the script runs them itself (a JS function: `returns`, then
//                  the arguments it was called with), as CopilotKit runs its frontend actions,
//          then?: "resume" | "tools"    after the first run, run again on the same thread
//                  (runId `<runId>-2`): "resume" answers every pending interrupt
//                  (agent.pendingInterrupts) with `resume` (default {status: "resolved",
//                  payload: {approved: true}}) through runAgent({resume}); "tools" runs each
//                  pending tool call (RUN_FINISHED's outcome.pendingToolCallIds, found in
//                  agent.messages) and appends its result with agent.addMessage({role: "tool",
//                  toolCallId, content}) before running again,
//          resume?: {status, payload}}
//
// Verification: with "runAgent" (the default, what CopilotKit and every app call),
// AbstractAgent.runAgent pipes the wire events through the client's own stages, in this order
// (src/agent/agent.ts of @ag-ui/client 1.0.0): enforceEvents (each event against
// @ag-ui/core's zod schema; unknown types dropped, unknown fields stripped, each with a
// console.warn), transformChunks (*_CHUNK events expanded), verifyEvents (the ordering rules:
// RUN_STARTED first, nothing after RUN_FINISHED, content only inside an open message, ...).
// There is no switch to turn them off. With "explicit" the script composes the same exported
// operators over agent.run(input) itself, so that a test can see each stage is there.
//
// Output, on stdout, one JSON object per line:
//   {"kind": "run", "index": n, "runId": "..."}   a run starts (1, then 2 with `then`)
//   {"kind": "event", "run": n, "event": {...}}    every event that passed verification, in order
//   {"kind": "tool", "toolCallId", "name", "args", "content"}   a frontend tool the script ran
//   {"kind": "warning", "text": "..."}     anything the client logged with console.warn
//   {"kind": "aborted", "after": "TYPE"}   abortRun() was called
//   {"kind": "result", "run": n, "state": ..., "messages": [...], "newMessages": [...],
//    "result": ..., "pendingInterrupts": [...]}                  after each run
//   {"kind": "error", "name": "...", "message": "..."}
// Exit status: 0 when the run completed (or was aborted as asked), 1 on any error, 2 on a bad
// invocation.
import process from "node:process";
import { HttpAgent, enforceEvents, transformChunks, verifyEvents } from "@ag-ui/client";
import { lastValueFrom, tap, toArray } from "rxjs";

/** @param {Record<string, unknown>} line */
function out(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// The client reports what it strips or drops (and failed runs) through the console: keep it
// on stdout, in order with the events, so the caller can hold the server to "no warnings".
for (const level of /** @type {const} */ (["warn", "error"])) {
  console[level] = (...args) => {
    const text = args
      .map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a)))
      .join(" ");
    out({ kind: level === "warn" ? "warning" : "console-error", text });
  };
}

const raw = process.argv[2];
if (!raw) {
  process.stderr.write("[glm_live] usage: node agui_run.mjs '<json config>'\n");
  process.exit(2);
}
const config = JSON.parse(raw);

const agent = new HttpAgent({
  url: config.url,
  headers: config.token ? { Authorization: `Bearer ${config.token}` } : {},
  threadId: config.threadId,
  initialMessages: config.messages ?? [
    { id: "m1", role: "user", content: "Review the Globex account" },
  ],
});

let aborted = false;
/** @param {{type: string}} event */
function maybeAbort(event) {
  if (!aborted && config.abortAfter && event.type === config.abortAfter) {
    aborted = true;
    out({ kind: "aborted", after: event.type });
    agent.abortRun();
  }
}

/** The frontend tools as the wire's `tools` (the script keeps `returns` to itself). */
const tools = (config.tools ?? []).map(
  (/** @type {{name: string, description: string, parameters: unknown}} */ t) => ({
    name: t.name,
    description: t.description,
    parameters: t.parameters,
  }),
);

/**
 * Run one frontend tool, as a frontend would: here, a JS function of its arguments.
 * @param {string} name
 * @param {Record<string, unknown>} args
 */
function runTool(name, args) {
  const tool = (config.tools ?? []).find((/** @type {{name: string}} */ t) => t.name === name);
  if (!tool) throw new Error(`[glm_live] the model called ${name}, which is not a tool here`);
  return `${tool.returns} (${name} called with ${JSON.stringify(args)})`;
}

let runIndex = 0;
/** @type {Record<string, any> | undefined} */
let finished;

/** @param {Record<string, unknown>} parameters */
async function viaRunAgent(parameters) {
  const { newMessages, result } = await agent.runAgent(parameters, {
    onEvent({ event }) {
      out({ kind: "event", run: runIndex, event });
      if (event.type === "RUN_FINISHED") finished = event;
      maybeAbort(event);
    },
  });
  return { newMessages, result };
}

/** @param {Record<string, unknown>} parameters */
async function viaExplicitPipeline(parameters) {
  // What runAgent does before applying events, spelled out with the exported stages.
  agent.abortController = new AbortController();
  const input = agent.prepareRunAgentInput(parameters);
  const events = await lastValueFrom(
    agent.run(input).pipe(
      enforceEvents(),
      transformChunks(),
      verifyEvents(),
      tap((event) => {
        out({ kind: "event", run: runIndex, event });
        maybeAbort(event);
      }),
      toArray(),
    ),
  );
  return { newMessages: [], result: events.at(-1)?.result };
}

/** @param {Record<string, unknown>} extra */
async function runOnce(extra) {
  runIndex += 1;
  const runId = runIndex === 1 ? config.runId : `${config.runId}-${runIndex}`;
  out({ kind: "run", index: runIndex, runId });
  finished = undefined;
  const parameters = {
    runId,
    forwardedProps: config.forwardedProps ?? {},
    tools,
    context: config.context ?? [],
    ...extra,
  };
  const { newMessages, result } =
    config.pipeline === "explicit"
      ? await viaExplicitPipeline(parameters)
      : await viaRunAgent(parameters);
  out({
    kind: "result",
    run: runIndex,
    state: agent.state,
    messages: agent.messages,
    newMessages,
    result,
    pendingInterrupts: agent.pendingInterrupts,
  });
}

/** Run every tool call the last run left pending; add each result as a tool message. */
function runPendingTools() {
  const pending = finished?.outcome?.pendingToolCallIds ?? [];
  if (pending.length === 0) throw new Error("[glm_live] the run left no tool call pending");
  for (const id of pending) {
    const call = agent.messages
      .flatMap((m) => (m.role === "assistant" ? (m.toolCalls ?? []) : []))
      .find((c) => c.id === id);
    if (!call) throw new Error(`[glm_live] pending tool call ${id} is not in agent.messages`);
    const args = JSON.parse(call.function.arguments || "{}");
    const content = runTool(call.function.name, args);
    out({ kind: "tool", toolCallId: id, name: call.function.name, args, content });
    agent.addMessage({ id: `tool-${id}`, role: "tool", toolCallId: id, content });
  }
}

try {
  await runOnce({});
  if (config.then === "resume") {
    const answer = config.resume ?? { status: "resolved", payload: { approved: true } };
    const resume = agent.pendingInterrupts.map((i) => ({ interruptId: i.id, ...answer }));
    if (resume.length === 0) throw new Error("[glm_live] the run left no interrupt pending");
    await runOnce({ resume });
  } else if (config.then === "tools") {
    runPendingTools();
    await runOnce({});
  }
  process.exitCode = 0;
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  out({ kind: "error", name: e.name, message: e.message });
  process.exitCode = 1;
}
