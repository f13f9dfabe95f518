"""The service's HTTP face: the reference's REST routes over a ``ServiceCore``.

``create_app(core)`` returns an ASGI app (FastAPI) serving every call of
``freight.client.transport.Transport`` at the reference's route, plus freight's
additions under ``/freight/v1/``; the route table is in ``service/README.md`` and
the OpenAPI document at ``/openapi.json``.  No authentication yet.

Bodies are JSON.  A task payload is the reference's text envelope (a string); a
task's ``result`` is the text envelope the endpoint produced (an endpoint answers
a text payload with a text result).  A result the core holds as bytes (a task
submitted in-process with the binary envelope) is sent base64-encoded in
``result_b64`` instead of ``result``.

Errors are ``{"code", "message"}`` with the ``ServiceError``'s HTTP status; an
unknown route is a 404 and a malformed request (bad JSON, wrong body type) a 400,
in the same shape.

The result stream ``GET /freight/v1/taskgroups/{id}/results`` (and
``GET /freight/v1/results`` for every group) is server-sent events: the
subscription is in place when the response's headers are sent, then one
``data: <task status JSON>`` event per finished task (the shape of
``GET /v2/tasks/{id}``), and a ``: ping`` comment every ``heartbeat_s`` seconds;
the stream ends when the client disconnects or the service shuts down.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from freight.service.core import ServiceCore
from freight.service.errors import InvalidRequest, ServiceError
from freight.service.reference_dialect import DEFAULT_QUEUE_PREFIX, wants_result_queue

if TYPE_CHECKING:
    from freight.service.amqp import AmqpResults

__all__ = ["DEFAULT_HEARTBEAT_S", "create_app", "task_json"]

#: A JSON object request body.
JsonBody = Annotated[dict[str, Any], Body()]
#: Seconds between keep-alive comments on a result stream.
DEFAULT_HEARTBEAT_S = 5.0


def task_json(status: dict[str, Any]) -> dict[str, Any]:
    """A task status dict made JSON-safe: a ``bytes`` result moves to
    ``result_b64`` (base64)."""
    result = status.get("result")
    if isinstance(result, bytes | bytearray | memoryview):
        out = dict(status)
        del out["result"]
        out["result_b64"] = base64.b64encode(bytes(result)).decode("ascii")
        return out
    return status


def _error(exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


def create_app(
    core: ServiceCore,
    *,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    broker_url: str | None = None,
    queue_prefix: str | None = None,
) -> FastAPI:
    """An ASGI app serving ``core``; see the module docstring.  The app does not
    own ``core``: shutting the server down leaves it running.

    ``broker_url`` (``amqp://user:pass@host:port/vhost``) turns on results for
    the reference's ``Executor`` over AMQP (service/amqp.py): the app then owns
    an ``AmqpResults`` (``app.state.amqp``, closed at the app's shutdown)."""
    app = FastAPI(
        title="freight service",
        version=core.version()["api"],
        description="The reference's REST dialect (globus-compute 4.19) plus"
        " freight's additions under /freight/v1/.",
    )

    # -- AMQP results (service/amqp.py) ---------------------------------------------
    amqp: AmqpResults | None = None
    if broker_url:
        from freight.service.amqp import AmqpResults

        amqp = AmqpResults(core, broker_url, queue_prefix or DEFAULT_QUEUE_PREFIX)
        app.router.on_shutdown.append(amqp.close)
    app.state.amqp = amqp

    @app.get("/v2/get_amqp_result_connection_url")
    def amqp_connection_url() -> dict[str, str]:
        if amqp is None:
            from freight.service.amqp import AmqpNotConfigured

            raise AmqpNotConfigured(
                "this service has no AMQP broker configured (freight service"
                " --broker-url / FREIGHT_BROKER_URL), so the reference's Executor"
                " cannot receive results; Client.get_result and batch_status work"
            )
        return amqp.connection

    def _declare_result_queue(body: dict[str, Any]) -> str | None:
        """Declare the group's result queue before the submit is answered; the
        group's id if this call added it (undone if the submit fails)."""
        if amqp is None or not wants_result_queue(body):
            return None
        tg = body.get("task_group_id")
        if tg is None:
            tg = body["task_group_id"] = str(uuid.uuid4())
        try:
            tg = str(uuid.UUID(tg))
        except (TypeError, ValueError, AttributeError):
            return None  # the core refuses it
        return tg if amqp.declare(tg) else None

    # -- end AMQP results -----------------------------------------------------------

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(InvalidRequest("; ".join(parts) or "malformed request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(
        request: Request, exc: StarletteHTTPException
    ) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(
            {"code": code, "message": message}, status_code=exc.status_code
        )

    # -- the reference's routes ----------------------------------------------------
    @app.get("/v2/version")
    def version(service: str | None = None) -> dict[str, Any]:
        return core.version()

    @app.post("/v3/functions")
    def register_function(body: JsonBody) -> dict[str, Any]:
        return core.register_function(body)

    @app.get("/v2/functions/{function_id}")
    def get_function(function_id: str) -> dict[str, Any]:
        return core.get_function(function_id)

    @app.delete("/v2/functions/{function_id}")
    def delete_function(function_id: str) -> dict[str, Any]:
        return core.delete_function(function_id)

    @app.post("/v2/containers")
    def register_container(body: JsonBody) -> dict[str, Any]:
        return core.register_container(body)

    @app.get("/v2/containers/{container_id}")
    def get_container(container_id: str) -> dict[str, Any]:
        return core.get_container(container_id)

    @app.post("/v3/endpoints/{endpoint_id}/submit")
    def submit(endpoint_id: str, body: JsonBody) -> dict[str, Any]:
        tasks = body.get("tasks")
        if isinstance(tasks, dict):
            for fid, payloads in tasks.items():
                if isinstance(payloads, list) and not all(
                    isinstance(p, str) for p in payloads
                ):
                    raise InvalidRequest(
                        f"tasks[{fid!r}]: over HTTP a task payload is the text"
                        " envelope (a string)"
                    )
        added = _declare_result_queue(body)  # AMQP results
        try:
            return core.submit(endpoint_id, body)
        except BaseException:
            if added is not None and amqp is not None:
                amqp.forget(added)
            raise

    @app.get("/v2/tasks/{task_id}")
    def get_task(task_id: str) -> dict[str, Any]:
        return task_json(core.get_task(task_id))

    @app.post("/v2/batch_status")
    def batch_status(body: JsonBody) -> dict[str, Any]:
        out = core.get_batch_status(body.get("task_ids"))  # type: ignore[arg-type]
        out["results"] = {t: task_json(s) for t, s in out["results"].items()}
        return out

    @app.get("/v2/taskgroup/{task_group_id}")
    def get_taskgroup(task_group_id: str) -> dict[str, Any]:
        return core.get_taskgroup(task_group_id)

    @app.get("/v2/endpoints/{endpoint_id}/status")
    def endpoint_status(endpoint_id: str) -> dict[str, Any]:
        return core.get_endpoint_status(endpoint_id)

    @app.get("/v2/endpoints/{endpoint_id}")
    def get_endpoint(endpoint_id: str) -> dict[str, Any]:
        return core.get_endpoint(endpoint_id)

    @app.get("/v2/endpoints")
    def get_endpoints(role: str | None = None) -> list[dict[str, Any]]:
        return core.get_endpoints(role)

    @app.get("/v3/endpoints/{endpoint_id}/allowed_functions")
    def allowed_functions(endpoint_id: str) -> dict[str, Any]:
        return core.get_allowed_functions(endpoint_id)

    # -- freight's additions -------------------------------------------------------
    @app.post("/freight/v1/tasks/cancel")
    def cancel(body: JsonBody) -> dict[str, Any]:
        terminate = body.get("terminate", False)
        return core.cancel(body.get("task_ids"), terminate=terminate)  # type: ignore[arg-type]

    @app.get("/freight/v1/tasks")
    def list_tasks(
        limit: int = 50,
        status: str | None = None,
        task_group_id: str | None = None,
    ) -> list[dict[str, Any]]:
        return core.list_tasks(limit, status=status, task_group_id=task_group_id)

    @app.get("/freight/v1/functions")
    def list_functions(limit: int = 100) -> list[dict[str, Any]]:
        return core.list_functions(limit)

    def _stream(task_group_id: str | None) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def on_result(message: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, message)

        sub = core.subscribe(task_group_id, on_result)  # before the headers go out

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": subscribed\n\n"
                waited = 0.0
                while not sub.closed or not queue.empty():
                    try:
                        message = await asyncio.wait_for(queue.get(), 1.0)
                    except TimeoutError:
                        waited += 1.0
                        if waited >= heartbeat_s:
                            waited = 0.0
                            yield b": ping\n\n"
                        continue
                    data = json.dumps(task_json(message), separators=(",", ":"))
                    yield b"data: " + data.encode() + b"\n\n"
            finally:
                sub.close()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/freight/v1/taskgroups/{task_group_id}/results")
    async def taskgroup_results(task_group_id: str) -> StreamingResponse:
        """Server-sent events: one ``data:`` event per finished task of the
        group (the shape of ``GET /v2/tasks/{id}``)."""
        return _stream(task_group_id)

    @app.get("/freight/v1/results")
    async def all_results() -> StreamingResponse:
        """Server-sent events: every finished task of every group."""
        return _stream(None)

    return app
