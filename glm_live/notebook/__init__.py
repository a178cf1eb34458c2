"""Floor 6, the notebook: what a person uses in a kernel.

ipywidgets and anywidget are first imported here; nothing below this floor may use them.

- :mod:`.aio`: the background event loop and :class:`~.aio.Handle`.
- :mod:`.session`: :func:`~.session.connect` and :class:`~.session.Session`.
- :mod:`.bench`: :mod:`glm_live.measure.bench` with a live progress view.
- :mod:`.magics`: ``%%glm`` and ``%glm`` (``%load_ext glm_live``).
- :mod:`.widgets`: the live widgets (Python classes beside their ``static/`` JS and CSS).
"""
