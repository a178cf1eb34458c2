"""Workflows that ship with glm_live. ``account-review``: an orchestrator plans, a data analyst
and a risk assessor work in parallel, and a report writer turns their findings into a report.
On the embedded runtime it runs on the simulated GLM-4.6."""

from __future__ import annotations

from typing import Any

from .core import AgentContext, Workflow

__all__ = ["account_review", "builtin_workflows"]


def _account(ctx: AgentContext) -> str:
    return str(ctx.inputs.get("account") or ctx.inputs.get("prompt") or "Globex")


async def data_analyzer(ctx: AgentContext) -> dict[str, Any]:
    """Reads the account's usage and revenue data and summarises the trends."""
    account = _account(ctx)
    async with ctx.step("load usage data"):
        await ctx.progress(0.1, f"loading usage data for {account}")
        await ctx.update({"account": account, "analysis": {"status": "running"}})
    async with ctx.step("analyse trends"):
        await ctx.progress(0.4, "analysing trends")
        completion = await ctx.chat(
            f"Analyse the usage and revenue data of the {account} account: trends, "
            "seasonality, and the segments that drive them.",
            sim={"tokens": 90, **ctx.run.chat_defaults.get("sim", {})},
        )
    metrics = {"active_seats": 412, "arr_k": 503, "growth_pct": 12.4}
    await ctx.update({"analysis": {"status": "done", "metrics": metrics}})
    await ctx.progress(1.0, "analysis done")
    return {"summary": completion.text[:400], "metrics": metrics}


async def risk_assessor(ctx: AgentContext) -> dict[str, Any]:
    """Rates renewal, adoption and concentration risk."""
    account = _account(ctx)
    async with ctx.step("score risks"):
        await ctx.progress(0.2, "scoring risks")
        score = await ctx.call_tool(
            "risk_score",
            {"likelihood": 0.35, "impact": 0.8},
            lambda likelihood, impact: round(likelihood * impact, 2),
        )
        await ctx.update({"risk": {"score": score}})
    async with ctx.step("assess exposure"):
        await ctx.progress(0.5, "assessing exposure")
        completion = await ctx.chat(
            f"Assess the renewal, adoption and concentration risks of the {account} account.",
            sim={"tokens": 80, **ctx.run.chat_defaults.get("sim", {})},
        )
    await ctx.patch([{"op": "add", "path": "/risk/level", "value": "medium"}])
    await ctx.progress(1.0, "risk assessed")
    return {"score": score, "assessment": completion.text[:400]}


async def report_writer(ctx: AgentContext) -> str:
    """Writes the account review from the analysis and the risk assessment."""
    account = _account(ctx)
    findings = ctx.results
    async with ctx.step("write report"):
        await ctx.progress(0.1, "drafting the report")
        completion = await ctx.chat(
            f"Write an account review report for {account}. Analysis: "
            f"{findings['data-analyzer']['metrics']}. Risk score: "
            f"{findings['risk-assessor']['score']}.",
            sim={"tokens": 120, **ctx.run.chat_defaults.get("sim", {})},
        )
    await ctx.update({"report": {"status": "done", "length": len(completion.text)}})
    await ctx.progress(1.0, "report written")
    return completion.text


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
