"""Tools for users' own tests (and ours): nothing in the package imports them.

- :mod:`.chaos`: :class:`~.chaos.ChaosProxy`, a loopback TCP proxy that cuts connections.
- :mod:`.comm_recorder`: :func:`~.comm_recorder.record_comms`, counting what widgets send.
- :mod:`.lab`: JupyterLab and headless Chromium, for browser tests and benchmarks.
"""
