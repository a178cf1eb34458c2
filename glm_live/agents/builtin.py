"""Workflows that ship with glm_live. ``account-review``: an orchestrator plans, a data analyst
and a risk assessor work in parallel, and a report writer turns their findings into a report.
On the embedded runtime it runs on the simulated GLM-4.6.

The account's figures come from one place, :func:`glm_live.wire.accounts.facts` (the demo's
stand-in for a CRM), drawn once per account and simulator seed: the state the agents publish,
their one-line summaries, the figures in their prompts, and (on the simulator) every answer
they get all quote the same ones. The seed is the run's ``sim.seed`` (the runtime puts its
own default there); the agents pin it on every chat, so a run never mixes two seeds.

With the input ``approval`` (``forwardedProps.approval: true``), the report writer asks a person
for approval before writing (``ctx.ask``: the run ends with an AG-UI interrupt, and a run on
the same thread with ``resume`` answers it). Approved: the report is written (with the
person's note, if any); declined (``approved: false``, or the interrupt abandoned): the run
finishes without a report, and says so.

Frontend tools: the report writer offers the model the tools the client sends
(``RunAgentInput.tools``, e.g. ``show_chart`` or ``notify``) when the run's input ``useTools``
is true (``forwardedProps.useTools: true``), and its prompt asks it to use the first of them
(the simulator then calls it, every time; a real model decides). The run ends with the tool
call pending; the client runs the tool and runs again on the same thread with the result, and
the report is written with it. Without ``useTools`` no agent offers them: a client that
registers tools for other purposes (CopilotKit sends all of its frontend tools) gets its
review as before. The data analyst and the risk assessor never offer them.

The account reviewed is the input ``account``, else the one the last user message names
(``Review the Initech account``), else Globex.
"""

from __future__ import annotations

from typing import Any

from ..wire.accounts import AccountFacts, facts, find_account
from .core import AgentContext, Workflow
from .interrupts import Rejected

__all__ = ["APPROVAL_SCHEMA", "account_review", "builtin_workflows"]

DEFAULT_ACCOUNT = "Globex"

#: What the report writer's approval question expects as its answer.
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}


def _account(ctx: AgentContext) -> str:
    """The account named by the inputs (``account``, else found in ``prompt``), or Globex."""
    named = ctx.inputs.get("account")
    if named:
        return str(named)
    return find_account(str(ctx.inputs.get("prompt") or "")) or DEFAULT_ACCOUNT


def _sim(ctx: AgentContext, tokens: int) -> dict[str, Any]:
    """The run's simulator knobs for one chat: ``tokens`` unless the run sets it, and the
    run's seed pinned (0 when it names none, as the simulator's own default)."""
    knobs = dict(ctx.run.chat_defaults.get("sim") or {})
    return {"tokens": tokens, **knobs, "seed": int(knobs.get("seed") or 0)}


def _facts(ctx: AgentContext) -> AccountFacts:
    return facts(_account(ctx), _sim(ctx, 0)["seed"])


def analysis_summary(f: AccountFacts) -> str:
    """The data analyst's finding in one plain line."""
    return (
        f"Revenue {f.revenue}, {f.growth} year on year; "
        f"{f.active_seats} of {f.seats} seats active ({f.adoption_pct}%)"
    )


def risk_summary(f: AccountFacts) -> str:
    """The risk assessor's finding in one plain line."""
    return (
        f"Churn risk {f.churn_risk} (score {f.risk_score}); renewal due {f.renewal}; "
        f"{f.open_tickets} open tickets"
    )


def report_summary(f: AccountFacts) -> str:
    """The report writer's conclusion in one plain line."""
    return f"{f.name}: {f.revenue} ARR, {f.churn_risk} churn risk, renewal {f.renewal}"


async def data_analyzer(ctx: AgentContext) -> dict[str, Any]:
    """Reads the account's usage and revenue data and summarises the trends."""
    f = _facts(ctx)
    async with ctx.step("load usage data"):
        await ctx.progress(0.1, f"loading usage data for {f.name}")
        await ctx.update({"account": f.name, "analysis": {"status": "running"}})
    async with ctx.step("analyse trends"):
        await ctx.progress(0.4, "analysing trends")
        await ctx.chat(
            f"Analyse the usage and revenue data of the {f.name} account: annual recurring "
            f"revenue {f.revenue} ({f.revenue_last_year} a year ago), {f.active_seats} of "
            f"{f.seats} seats active. Describe the trends and what drives them.",
            sim=_sim(ctx, 90),
            frontend_tools=False,
        )
    metrics = f.metrics()
    await ctx.update({"analysis": {"status": "done", "metrics": metrics}})
    summary = analysis_summary(f)
    await ctx.progress(1.0, summary)
    return {"summary": summary, "metrics": metrics}


async def risk_assessor(ctx: AgentContext) -> dict[str, Any]:
    """Rates renewal, adoption and concentration risk."""
    f = _facts(ctx)
    async with ctx.step("score risks"):
        await ctx.progress(0.2, "scoring risks")
        score = await ctx.call_tool(
            "risk_score",
            {"likelihood": f.likelihood, "impact": f.impact},
            lambda likelihood, impact: round(likelihood * impact, 2),
        )
        await ctx.update({"risk": {"score": score}})
    async with ctx.step("assess exposure"):
        await ctx.progress(0.5, "assessing exposure")
        await ctx.chat(
            f"Assess the renewal, adoption and concentration risks of the {f.name} account: "
            f"risk score {score}, renewal on {f.renewal}, {f.open_tickets} open tickets.",
            sim=_sim(ctx, 100),
            frontend_tools=False,
        )
    await ctx.patch([{"op": "add", "path": "/risk/level", "value": f.churn_risk}])
    summary = risk_summary(f)
    await ctx.progress(1.0, summary)
    return {"summary": summary, "score": score, "level": f.churn_risk}


async def report_writer(ctx: AgentContext) -> str:
    """Writes the account review from the analysis and the risk assessment."""
    f = _facts(ctx)
    findings = ctx.results
    note = ""
    if ctx.inputs.get("approval"):
        approved, note = await _approval(ctx, f)
        if not approved:
            text = f"Report not written: the review of {f.name} was not approved"
            text += f" ({note})." if note else "."
            await ctx.say(text)
            await ctx.update({"report": {"status": "declined"}})
            return text
    tools = ctx.frontend_tools if ctx.inputs.get("useTools") else []
    ask_tool = (
        f" First use the tool {tools[0]['name']} to show the key figures of {f.name} to the "
        "reader, then write the report with what it returns."
        if tools
        else ""
    )
    async with ctx.step("write report"):
        await ctx.progress(0.1, "drafting the report")
        completion = await ctx.chat(
            f"Write the account review report of the {f.name} account, with a table of the "
            f"key figures and a recommendation. Analysis: "
            f"{findings['data-analyzer']['summary']}. Risk: "
            f"{findings['risk-assessor']['summary']}."
            + (f" The approver's note: {note}." if note else "")
            + ask_tool,
            # Room for the whole report: its summary, its table, its risks, its advice.
            sim=_sim(ctx, 300),
            frontend_tools=bool(tools),
        )
    await ctx.update({"report": {"status": "done", "length": len(completion.text)}})
    await ctx.progress(1.0, report_summary(f))
    return completion.text


async def _approval(ctx: AgentContext, f: AccountFacts) -> tuple[bool, str]:
    """Ask a person to approve the report: whether they did, and their note (may be empty).
    Abandoning the question (``status: cancelled``) declines."""
    try:
        answer = await ctx.ask(
            f"Write the account review report of {f.name}? Analysis: "
            f"{ctx.results['data-analyzer']['summary']}. Risk: "
            f"{ctx.results['risk-assessor']['summary']}.",
            reason="approval",
            schema=APPROVAL_SCHEMA,
        )
    except Rejected:
        return False, ""
    return bool(answer.get("approved")), str(answer.get("note") or "")


def account_review() -> Workflow:
    """The demo workflow: data-analyzer and risk-assessor in parallel, then report-writer."""
    flow = Workflow(
        "account-review",
        "Review a customer account: data, risk, report.",
        initial_state={"account": None},
    )
    flow.add("data-analyzer", data_analyzer)
    flow.add("risk-assessor", risk_assessor)
    flow.add("report-writer", report_writer, after=["data-analyzer", "risk-assessor"])
    return flow


def builtin_workflows() -> dict[str, Workflow]:
    """The workflows a runtime serves unless told otherwise, by name."""
    flow = account_review()
    return {flow.name: flow}
