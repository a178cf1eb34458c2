"""``GET /v1/models`` and ``GET /v1/models/{id}`` (also under GLM's ``/api/paas/v4``).

OpenAI's list format: ``{"object": "list", "data": [{"id", "object": "model", "created",
"owned_by"}]}``; one model is the object alone; an unknown one is a 404 with a GLM error body
(code 1211, "model does not exist", as the chat path answers an unknown model).

What is listed depends on the backend:

- ``sim``: the catalog (:data:`glm_live.wire.models.CATALOG`), ids as a request names them
  (``glm-4.7``), ``owned_by: "glm-live-sim"`` so a listing never passes for Z.ai's.
- a proxy: the upstream's own ``/models`` when it answers one (OpenAI, vLLM, BigModel), passed
  on as it came; when it has none (Z.ai's international endpoint answers 404), the catalog,
  ``owned_by: "z-ai"``. Retrieving one model looks it up in that same list, so list and
  retrieve never disagree.

Who may read it: anyone the chat path lets in (the runtime's authentication runs before this;
a scoped token is enough).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..wire.models import CATALOG, base_model_name
from .proxy import Proxy

__all__ = ["ModelList", "model_routes"]

_ROOTS = ("/v1", "/api/paas/v4")


class ModelList:
    """Answers the models routes for one runtime."""

    def __init__(self, proxy: Proxy | None) -> None:
        self.proxy = proxy

    async def models(self) -> dict[str, Any]:
        """The list, in OpenAI's format."""
        if self.proxy is not None:
            upstream = await self.proxy.models()
            if upstream is not None:
                return upstream
        owner = "glm-live-sim" if self.proxy is None else "z-ai"
        data = [{**info.to_openai(), "owned_by": owner} for info in CATALOG.values()]
        return {"object": "list", "data": data}

    async def list(self, request: Request) -> Response:
        return JSONResponse(await self.models())

    async def retrieve(self, request: Request) -> Response:
        wanted = request.path_params["model_id"]
        listing = await self.models()
        for model in listing.get("data") or []:
            if isinstance(model, dict) and model.get("id") in (wanted, base_model_name(wanted)):
                return JSONResponse(model)
        return JSONResponse(
            {"error": {"code": "1211", "message": f"model {wanted!r} does not exist"}},
            status_code=404,
        )


def model_routes(proxy: Proxy | None) -> list[Route]:
    """The routes, under both API roots."""
    service = ModelList(proxy)
    routes = []
    for root in _ROOTS:
        routes.append(Route(root + "/models", service.list, methods=["GET"]))
        routes.append(Route(root + "/models/{model_id}", service.retrieve, methods=["GET"]))
    return routes
