"""Floor 6, the notebook: what a person uses in a kernel.

ipywidgets and anywidget are first imported here; nothing below this floor may use them.

- :mod:`.aio`: the background event loop and :class:`~.aio.Handle`.
- :mod:`.session`: :func:`~.session.connect` and :class:`~.session.Session`.
- :mod:`.conversation`: :class:`~.conversation.Conversation`, a chat's history.
- :mod:`.runlog`: :class:`~.runlog.RunLog`, a run's events with the times they arrived.
- :mod:`.replay`: :func:`~.replay.replay`, either played again into its widget, no server.
- :mod:`.bench`: :mod:`glm_live.measure.bench` with a live progress view.
- :mod:`.magics`: ``%%glm`` and ``%glm`` (``%load_ext glm_live``).
- :mod:`.widgets`: the live widgets (Python classes beside their ``static/`` JS and CSS).
"""
