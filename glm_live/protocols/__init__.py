"""Floor 3, protocols spoken over the transports.

- :mod:`.glm`: :class:`~.glm.GLMClient`, GLM-4.6 / OpenAI-compatible chat over SSE.
- :mod:`.agui`: AG-UI events folded into a run's state (JSON Patch included).
"""
