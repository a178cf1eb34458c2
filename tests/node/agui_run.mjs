// One AG-UI run through the official TypeScript client (@ag-ui/client's HttpAgent), under Node.
//
//   node agui_run.mjs '<json config>'
//
// config: {url, token?, runId?, threadId?, messages?, forwardedProps?,
//          abortAfter?: "<EVENT_TYPE>"   call agent.abortRun() when the first such event arrives,
//          pipeline?: "runAgent" | "explicit"}
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
//   {"kind": "event", "event": {...}}      every event that passed verification, in order
//   {"kind": "warning", "text": "..."}     anything the client logged with console.warn
//   {"kind": "aborted", "after": "TYPE"}   abortRun() was called
//   {"kind": "result", "state": ..., "messages": [...], "newMessages": [...], "result": ...}
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

const parameters = { runId: config.runId, forwardedProps: config.forwardedProps ?? {} };

async function viaRunAgent() {
  const { newMessages, result } = await agent.runAgent(parameters, {
    onEvent({ event }) {
      out({ kind: "event", event });
      maybeAbort(event);
    },
  });
  return { newMessages, result };
}

async function viaExplicitPipeline() {
  // What runAgent does before applying events, spelled out with the exported stages.
  agent.abortController = new AbortController();
  const input = agent.prepareRunAgentInput(parameters);
  const events = await lastValueFrom(
    agent.run(input).pipe(
      enforceEvents(),
      transformChunks(),
      verifyEvents(),
      tap((event) => {
        out({ kind: "event", event });
        maybeAbort(event);
      }),
      toArray(),
    ),
  );
  return { newMessages: [], result: events.at(-1)?.result };
}

try {
  const { newMessages, result } =
    config.pipeline === "explicit" ? await viaExplicitPipeline() : await viaRunAgent();
  out({ kind: "result", state: agent.state, messages: agent.messages, newMessages, result });
  process.exitCode = 0;
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  out({ kind: "error", name: e.name, message: e.message });
  process.exitCode = 1;
}
