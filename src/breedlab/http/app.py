"""The FastAPI app behind ``breedlab serve`` (DESIGN §11).

Routes: ``POST /v1/{capability}/predict`` (the champion answers; a sticky canary cohort
may get the canary; a sampled share is mirrored to the shadow; ``inputs`` by position,
by tabular feature name, or a text, read by the contract), ``POST
/v1/{capability}/predict:batch`` (up to ``max_batch`` such requests, every one checked
before any is routed, then each routed as if sent alone, in order -- or, for a text
capability with no canary running, answered by the champion in one call), ``GET /metrics``
(Prometheus), ``GET /healthz``, and admin routes under ``/admin/{capability}/`` that need
``Authorization: Bearer <token>`` (the token file ``LAB/keys/admin.token``, created 0600
on first serve). One error boundary: :data:`ERROR_STATUS` maps error families to HTTP
statuses; a bad body is a 422 with a one-line reason, never a 500. What a client reads
never shows the server's filesystem (:func:`public_message`): a package the lab
materialised is named by its id, the lab's own folders as ``LAB/...``, any other path on
this machine is hidden. The CLI, run by whoever owns the lab, keeps the paths.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from breedlab.clock import format_time
from breedlab.errors import (
    Conflict,
    IntegrityError,
    InvalidRequest,
    LabError,
    NotFound,
    PolicyError,
    Unavailable,
    one_line,
)
from breedlab.http.bodies import (
    ADMIN_ERROR_ANSWERS,
    ERROR_ANSWERS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    BatchRequest,
    BatchResponse,
    CanaryStart,
    PredictRequest,
    PredictResponse,
    Promote,
    ShadowStart,
    one_line_reason,
)
from breedlab.http.limits import BodyLimit
from breedlab.registry.manifest import RiskTier
from breedlab.release.canary import CanaryPolicy, ExposureCap
from breedlab.release.shadow_stats import ShadowPair

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from breedlab.lab import Lab
    from breedlab.serving.request_inputs import Row
    from breedlab.serving.router import Answer, CapabilityRoute

__all__ = [
    "ERROR_STATUS",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "TOKEN_FILE",
    "create_app",
    "ensure_admin_token",
    "listen",
    "public_message",
    "serving",
]

#: One table from error family to HTTP status (STYLE rule 11).
ERROR_STATUS: tuple[tuple[type[LabError], int], ...] = (
    (InvalidRequest, 422),
    (NotFound, 404),
    (PolicyError, 403),
    (Conflict, 409),
    (IntegrityError, 500),
    (Unavailable, 503),
)
TOKEN_FILE = "admin.token"
_PREDICT_PATHS = ("/predict", "/predict:batch")


@contextmanager
def serving(app: FastAPI, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on an ephemeral port; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a generous bound: a loaded host starts slowly
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise LabError("the HTTP server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one), for uvicorn.

    Made as asyncio makes its own (``IPPROTO_TCP``): asyncio turns Nagle off
    (``TCP_NODELAY``) only on such sockets, and with Nagle on, each answer on a kept-alive
    connection waited ~40 ms for a delayed ACK (1 ms without).

    Raises:
        InvalidRequest: the address cannot be bound (in use, or not this machine's).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise InvalidRequest(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise InvalidRequest(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="choose another --port (--port 0 takes any free one)",
        ) from e
    return sock


def status_for(error: LabError) -> int:
    for family, status in ERROR_STATUS:
        if isinstance(error, family):
            return status
    return 500


#: An absolute path in a message: at its start or after a space, a quote, a bracket or "=".
_ABSOLUTE = re.compile(r"(?<![^\s'\"(\[=])/[^\s'\"()\[\]<>,;]*")
#: A package folder materialised for a job or a server: ``<32 hex>`` (a staging folder
#: adds ``.<pid>-<random>.tmp``), then maybe a file inside it.
_MATERIALISED = re.compile(r"([0-9a-f]{32})[^/]*(?:/(.+))?")


def public_message(message: str, lab_root: Path) -> str:
    """``message`` as an HTTP client may read it (issue 10: errors showed server paths).

    A path under ``LAB/work/inputs/`` is the package materialised there: named by its
    short id (and the file, if one is named); another path under the lab becomes
    ``LAB/...``; any other absolute path whose top folder exists on this machine
    (``/tmp/...``, ``/home/...``) becomes ``[server path]``. A path-like text that is no
    path here (an HTTP route such as ``/v1/...``) is left as it is.
    """
    roots = list(dict.fromkeys((lab_root, lab_root.resolve())))

    def public(match: re.Match[str]) -> str:
        path = match.group(0)
        for root in roots:
            inputs, lab = f"{root}/work/inputs/", f"{root}/"
            if path.startswith(inputs):
                inside = _MATERIALISED.fullmatch(path.removeprefix(inputs))
                if inside is not None:
                    named = f"package sha256:{inside.group(1)[:12]}"
                    return named + (f" ({inside.group(2)})" if inside.group(2) else "")
            if path == str(root) or path.startswith(lab):
                return "LAB" + path.removeprefix(str(root))
        top = path[1:].partition("/")[0]
        return "[server path]" if top and os.path.isdir(f"/{top}") else path

    return _ABSOLUTE.sub(public, message)


def ensure_admin_token(keys_dir: Path) -> Path:
    """The admin token file, created with mode 0600 if missing (no secret in the toml)."""
    path = keys_dir / TOKEN_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path


def create_app(
    lab: Lab,
    *,
    token: str | None = None,
    canary_policy: CanaryPolicy | None = None,
    faults: Mapping[str, float] | None = None,
    shadow_queue: int = 256,
    srm_min_units: int = 200,
    release_key: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    shadow_priority: str | None = None,
    max_batch: int = MAX_BATCH,
) -> FastAPI:
    """The app over an open lab. ``token`` defaults to the lab's admin token file.

    ``release_key`` names the production key that signs admin actions when a request
    names none (default: ``[signing] release_key``); ``max_body`` bounds a request body
    in bytes (refused with 413 before it is read), ``max_depth`` the nesting of its arrays
    and objects (refused with 400 before it is parsed), ``max_batch`` the requests of one
    ``predict:batch`` body (refused with 422 above it). ``faults`` injects errors per role
    (``{"canary": 0.05}``) for abort drills. ``shadow_priority`` (``idle`` or ``normal``)
    overrides ``[release] shadow_priority`` for the shadow process.
    """
    secret = token or ensure_admin_token(lab.config.keys_dir).read_text("utf-8").strip()
    registry = CollectorRegistry()
    requests = Counter(
        "breedlab_requests",
        "Predict requests by who answered and the outcome (ok; invalid: the client's "
        "fault; error: the model's or the server's)",
        ["capability", "role", "outcome"],
        registry=registry,
    )
    errors = Counter(
        "breedlab_errors", "Failed requests", ["capability", "role"], registry=registry
    )
    latency = Histogram(
        "breedlab_latency_seconds",
        "Model latency per role",
        ["capability", "role"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
    )
    mirrored = Counter("breedlab_shadow_mirrored", "Mirrored requests", registry=registry)
    dropped = Counter("breedlab_shadow_dropped", "Mirrors dropped", registry=registry)
    shadow_errors = Counter("breedlab_shadow_errors", "Shadow failures", registry=registry)

    def on_pair(capability: str, pair: ShadowPair) -> None:
        latency.labels(capability, "shadow").observe(pair.shadow_latency_s or 0.0)
        requests.labels(capability, "shadow", "error" if pair.shadow_error else "ok").inc()
        if pair.shadow_error:
            shadow_errors.inc()
            errors.labels(capability, "shadow").inc()

    router = lab.router(
        canary_policy=canary_policy,
        faults=faults,
        shadow_queue=shadow_queue,
        srm_min_units=srm_min_units,
        shadow_priority=shadow_priority,
        on_pair=on_pair,
    )
    Gauge(
        "breedlab_shadow_up", "1 while a shadow process is running", registry=registry
    ).set_function(lambda: float(router.mirror.up))
    Gauge(
        "breedlab_shadow_restarts", "Shadow process restarts after it died", registry=registry
    ).set_function(lambda: float(router.mirror.restarts))
    Gauge(
        "breedlab_ledger_refused",
        "1 while the newest ledger events do not verify (the last verified table serves)",
        registry=registry,
    ).set_function(lambda: float(router.refused is not None))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        router.close()

    app = FastAPIOffline(  # /docs from the installed package: no CDN, works offline
        title="breedlab",
        version="1",
        description="Serving with shadow, canary, promotion and rollback (DESIGN §11).",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=max_body, depth=max_depth)
    app.state.router = router
    app.state.lab = lab

    def public(message: str) -> str:
        return public_message(message, lab.config.root)

    @app.exception_handler(LabError)
    async def lab_error(_: Request, exc: LabError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.code, "message": public(one_line(exc.message))},
            status_code=status_for(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        capability = request.path_params.get("capability")
        if capability is not None and request.url.path.endswith(_PREDICT_PATHS):
            requests.labels(capability, "champion", "invalid").inc()
        return JSONResponse(
            {"error": InvalidRequest.code, "message": one_line_reason(exc)}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own answers (no such route, a method not allowed, a body that
        # is not JSON) in the same shape as every other error.
        code = {404: NotFound.code, 405: "method_not_allowed"}.get(
            exc.status_code, InvalidRequest.code
        )
        return JSONResponse(
            {"error": code, "message": one_line(str(exc.detail))},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), secret.encode()
        ):
            raise _Unauthorized()

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: _Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized", "message": "admin routes need 'Authorization: Bearer TOKEN'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def route_of(capability: str) -> CapabilityRoute:
        route = router.refresh().routes.get(capability)
        if route is None:
            if capability in router.degraded:
                raise Unavailable(
                    f"capability {capability!r} cannot be served: {router.degraded[capability]}"
                )
            raise NotFound(f"no champion serves capability {capability!r}")
        return route

    def admitted(route: CapabilityRoute, body: PredictRequest) -> Row:
        """The body's row, once it and its label answer the contract (nothing routed)."""
        if body.label is not None and body.label not in route.champion.labels:
            raise InvalidRequest(
                f"label: {body.label[:40]!r} is not one of {route.capability}'s labels "
                f"({', '.join(route.champion.labels[:12])})"
            )
        return route.champion.row(body.inputs)

    @contextmanager
    def counted(capability: str) -> Iterator[None]:
        """Count a routing call's failures by whose fault, and what it mirrored."""
        before = router.mirror.mirrored, router.mirror.dropped
        try:
            yield
        except InvalidRequest:  # the client's fault: not a model error
            requests.labels(capability, "champion", "invalid").inc()
            raise
        except LabError:
            requests.labels(capability, "champion", "error").inc()
            errors.labels(capability, "champion").inc()
            raise
        finally:
            mirrored.inc(router.mirror.mirrored - before[0])
            dropped.inc(router.mirror.dropped - before[1])

    def response(capability: str, answer: Answer, seconds: float) -> PredictResponse:
        """One answer as the client reads it, counted by who answered."""
        if answer.canary_failed:
            errors.labels(capability, "canary").inc()
        requests.labels(capability, answer.role, "ok").inc()
        latency.labels(capability, answer.role).observe(seconds)
        return PredictResponse(
            label=answer.label,
            probabilities=answer.probabilities,
            role=answer.role,
            package=str(answer.package),
        )

    def answered(route: CapabilityRoute, body: PredictRequest, row: Row) -> PredictResponse:
        """Route one admitted request: champion, canary cohort, shadow mirror, metrics."""
        low = (body.risk or ("low" if route.risk_tier is RiskTier.LOW else "high")) == "low"
        t0 = time.perf_counter()
        with counted(route.capability):
            answer = router.predict(
                route, unit=body.unit, inputs=row, truth=body.label, low_risk=low
            )
        return response(route.capability, answer, time.perf_counter() - t0)

    @app.post("/v1/{capability}/predict", response_model=PredictResponse, responses=ERROR_ANSWERS)
    def predict(capability: str, body: PredictRequest) -> PredictResponse:
        route = route_of(capability)
        try:
            row = admitted(route, body)
        except InvalidRequest:
            requests.labels(capability, "champion", "invalid").inc()
            raise
        return answered(route, body, row)

    @app.post(
        "/v1/{capability}/predict:batch", response_model=BatchResponse, responses=ERROR_ANSWERS
    )
    def predict_batch(capability: str, body: BatchRequest) -> BatchResponse:
        route = route_of(capability)
        rows: list[Row] = []
        try:
            if len(body.requests) > max_batch:
                raise InvalidRequest(
                    f"requests: a batch holds at most {max_batch} requests "
                    f"(got {len(body.requests)})",
                    hint="split it, or serve with a larger --max-batch",
                )
            for i, item in enumerate(body.requests):  # every one checked before any routed
                try:
                    rows.append(admitted(route, item))
                except InvalidRequest as e:
                    raise InvalidRequest(f"requests.{i}: {e.message}", hint=e.hint) from e
        except InvalidRequest:
            requests.labels(capability, "champion", "invalid").inc()
            raise
        if router.batches(route):  # texts, no canary: one call of the champion for all
            t0 = time.perf_counter()
            with counted(capability):
                answers = router.predict_batch(route, rows)
            share = (time.perf_counter() - t0) / len(rows)
            return BatchResponse(results=[response(capability, a, share) for a in answers])
        # Each as if sent alone, in order: a fresh route per request, so a canary that
        # one aborts (or a promotion in between) is seen by the next, as for singles.
        return BatchResponse(
            results=[
                answered(route_of(capability), item, row)
                for item, row in zip(body.requests, rows, strict=True)
            ]
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        table = router.refresh()
        return {
            "ok": bool(table.routes),
            "seq": table.seq,  # the verified ledger head the table was built from
            "champions": {c: str(r.champion.package) for c, r in table.routes.items()},
            # newer ledger events that did not verify (the table above goes on serving)
            "refused": None if router.refused is None else public(router.refused),
            # capabilities whose newest models failed (their last good route, if any,
            # goes on serving; the others are not affected)
            "degraded": {c: public(why) for c, why in router.degraded.items()},
        }

    guard = [Depends(admin)]

    @app.post("/admin/{capability}/shadow/start", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def shadow_start(capability: str, body: ShadowStart) -> dict[str, Any]:
        ev = lab.shadow_start(
            capability, body.package, sample=body.sample, key=body.key or release_key
        )
        router.refresh(force=True)
        router.mirror.wait_ready()  # mirroring starts once the shadow process has its models
        return {"seq": ev.seq, "kind": ev.kind, **dict(ev.payload)}

    @app.post("/admin/{capability}/shadow/stop", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def shadow_stop(capability: str) -> dict[str, Any]:
        router.mirror.flush()
        ev = lab.shadow_stop(capability, key=release_key)
        router.refresh(force=True)
        return {"seq": ev.seq, "kind": ev.kind}

    @app.get("/admin/{capability}/shadow/report", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def shadow_report(capability: str) -> dict[str, Any]:
        router.mirror.flush()
        pid, report = lab.shadow_report(capability)
        return {"package": str(pid), **report.to_record()}

    @app.post("/admin/{capability}/canary/start", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def canary_start(capability: str, body: CanaryStart | None = None) -> dict[str, Any]:
        router.mirror.flush()
        body = body or CanaryStart()
        ev = lab.canary_start(
            capability,
            percent=body.percent,
            cap=ExposureCap(requests=body.max_requests, units=body.max_units),
            stage_min=router.canary_policy.stage_min,
            key=body.key or release_key,
        )
        router.refresh(force=True)
        return {"seq": ev.seq, "kind": ev.kind, "package": ev.payload["package"]}

    @app.post("/admin/{capability}/canary/stop", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def canary_stop(capability: str) -> dict[str, Any]:
        ev = lab.canary_stop(capability, reason="stopped by an admin", key=release_key)
        router.refresh(force=True)
        return {"seq": ev.seq, "kind": ev.kind}

    @app.get("/admin/{capability}/status", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def status(capability: str) -> dict[str, Any]:
        table = router.refresh()
        route = table.routes.get(capability)
        state = lab.release_state(capability)
        run = None if route is None else route.canary_run
        return {
            "capability": capability,
            "champion": None if route is None else str(route.champion.package),
            "previous": None
            if route is None or route.previous is None
            else str(route.previous.package),
            "previous_warm_until": None
            if state.baking_until is None or route is None or route.previous is None
            else format_time(state.baking_until),
            "shadow": None if state.shadow is None else str(state.shadow),
            "canary": None if run is None else str(run.package),
            "stage": None if run is None else run.cohort.stage,
            "weight": None if run is None else run.cohort.weight,
            "guardrails": None if run is None else run.statuses(),
            "mirrored": router.mirror.mirrored,
            "dropped": router.mirror.dropped,
            "shadow_process": {
                "pid": router.mirror.pid,
                "up": router.mirror.up,
                "restarts": router.mirror.restarts,
            },
            "deny_list": sorted(str(d) for d in state.deny.retired),
            "events": router.events[-20:],
        }

    @app.post("/admin/{capability}/promote", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def promote(capability: str, body: Promote) -> dict[str, Any]:
        ev = lab.promote(
            capability,
            body.package,
            baking=None if body.baking_s is None else timedelta(seconds=body.baking_s),
            key=body.key or release_key,
        )
        router.refresh(force=True)
        return {"seq": ev.seq, "kind": ev.kind, **dict(ev.payload)}

    @app.post("/admin/{capability}/rollback", dependencies=guard, responses=ADMIN_ERROR_ANSWERS)
    def rollback(capability: str) -> dict[str, Any]:
        # In process: the swap happens inside this request (DESIGN §11).
        def switch() -> None:
            router.refresh(force=True)

        def verify(_: object) -> None:
            served = router.table.routes[capability].champion
            served.predict(served.warm_up_row)

        ev = lab.rollback(capability, switch=switch, verify=verify, key=release_key)
        return {"seq": ev.seq, "kind": ev.kind, **dict(ev.payload)}

    return app


class _Unauthorized(Exception):
    """An admin route without the right bearer token (401)."""
