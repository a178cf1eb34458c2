"""Floor 5, measurement: timings into pandas DataFrames, and the benchmark harness.

pandas and matplotlib are first imported here; nothing below this floor may use them.

- :mod:`.recorder`: :class:`~.recorder.Recorder`, columnar event and request timings.
- :mod:`.bench`: the load generator, its results, statistics and plots.
"""
