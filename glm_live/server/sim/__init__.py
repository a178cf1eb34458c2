"""The simulated GLM-4.6: the answer engine, its text, and the pacer that writes it."""

from __future__ import annotations

from .engine import DONE, Answer, HTTPFault, Simulator, StreamPlan

__all__ = ["DONE", "Answer", "HTTPFault", "Simulator", "StreamPlan"]
