"""Traffic: requests made from a labelled dataset, sent to a running ``breedlab serve`` on
this machine, and what came back (``breedlab traffic``; the demo's stage 3 uses the same
requests).

This module owns the client's side: the loopback rule (a URL whose host is not this
machine is refused -- breedlab sends nothing over a network, and ignores proxy settings),
the request bodies (one per dataset item, its label named from the capability's label
list so a canary can count wrong answers), and the summary (sent, answered, errors, who
answered, round-trip latency percentiles). What the server does with the requests is
:mod:`breedlab.http.app`'s.
"""

from __future__ import annotations

import ipaddress
import math
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedlab.canonical import JsonValue
from breedlab.errors import InvalidRequest, LabError, NotFound, PolicyError, Unavailable
from breedlab.http.app import ERROR_STATUS

if TYPE_CHECKING:
    import httpx

    from breedlab.lab import Lab

__all__ = [
    "DEFAULT_URL",
    "DEV_ALIAS",
    "TrafficSummary",
    "dataset_requests",
    "loopback_url",
    "request_body",
    "send_traffic",
]

#: Where ``breedlab serve`` listens unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:8000"
#: The alias of a capability's dev split (``capability bootstrap`` sets it).
DEV_ALIAS = "data-dev"


def loopback_url(url: str) -> str:
    """The base URL of a server on this machine, as ``scheme://host:port``.

    Raises:
        InvalidRequest: not an ``http(s)://host[:port]`` URL (a path, query or user
            included). PolicyError: the host is not a loopback address or ``localhost``.
    """
    parts = urllib.parse.urlsplit(url.strip())
    try:
        parts.port  # noqa: B018  # parses the port: raises ValueError on a bad one
    except ValueError as e:
        raise InvalidRequest(f"{url!r} has a bad port: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"{url!r} is not a server URL like {DEFAULT_URL}",
            hint="'breedlab serve --json' prints the URL it serves on",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidRequest(
            f"{url!r}: give the server's base URL (scheme, host and port), like {DEFAULT_URL}"
        )
    if not _is_loopback(parts.hostname):
        raise PolicyError(
            f"{parts.hostname} is not this machine: breedlab sends traffic only to a server "
            "on loopback (127.0.0.1, ::1, localhost)"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":  # RFC 6761: always the loopback interface
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it could resolve anywhere
        return False


def dataset_requests(
    lab: Lab, capability: str, source: str | None = None, *, labels: bool = True
) -> tuple[str, list[dict[str, JsonValue]]]:
    """Predict request bodies, one per item of a dataset (without ``unit``), and what the
    dataset was: ``source`` is a dataset folder (such as ``breedlab samples`` writes) or a
    dataset package (id, prefix or ``CAP@alias``); default ``CAP@data-dev``, the dev split
    ``capability bootstrap`` registers. With ``labels``,
    each body carries its item's label, named by the capability's contract.

    Raises:
        NotFound: no such package, or no dev split. InvalidRequest: not a dataset of
            this capability, or a label the contract does not name. IntegrityError: the
            dataset's files do not verify.
    """
    from breedlab.datasets import read_dataset
    from breedlab.registry.manifest import Kind

    _, contract = lab.capability(capability)
    if source is not None and Path(source).is_dir():
        shown = source
        data = read_dataset(Path(source))
    else:
        ref = source or f"{capability}@{DEV_ALIAS}"
        if source is None and lab.alias(capability, DEV_ALIAS) is None:
            raise NotFound(
                f"{capability} has no dev split ({ref} is not set)",
                hint="name a dataset with --dataset (a folder, such as 'breedlab samples "
                f"{capability} .' writes, or a package)",
            )
        pid = lab.resolve(ref)
        manifest = lab.manifest(pid)
        if manifest.kind is not Kind.DATASET or manifest.capability != capability:
            raise InvalidRequest(
                f"{ref} ({pid.short}) is a {manifest.kind} of {manifest.capability!r}, "
                f"not a dataset of {capability!r}"
            )
        shown = f"{ref} ({pid.short})" if "@" in ref else pid.short
        data = read_dataset(lab.workspace.materialise(pid, manifest))
    if len(data.x) == 0:
        raise InvalidRequest(f"{shown} holds no items")
    names = contract.labels
    bodies: list[dict[str, JsonValue]] = []
    for x, y in zip(data.x, data.y, strict=True):
        body: dict[str, JsonValue] = {"inputs": [float(v) for v in x]}
        if labels and names:
            if not 0 <= int(y) < len(names):
                raise InvalidRequest(f"{shown}: label index {int(y)} is not one of {capability}'s")
            body["label"] = names[int(y)]
        bodies.append(body)
    return shown, bodies


def request_body(bodies: Sequence[Mapping[str, JsonValue]], i: int) -> dict[str, JsonValue]:
    """Request ``i`` of a run: item ``i`` (cycling through ``bodies``) from unit
    ``user-i``, so a canary's sticky cohort sees a steady share of a run."""
    return {**bodies[i % len(bodies)], "unit": f"user-{i}"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficSummary:
    """What a run of requests got back. Latencies are round trips seen by the client."""

    url: str
    capability: str
    sent: int
    answered: int
    errors: int
    roles: Mapping[str, int] = field(default_factory=dict)  # who answered: champion, canary
    packages: Mapping[str, int] = field(default_factory=dict)  # which package answered
    latencies_s: tuple[float, ...] = ()  # of the answered requests, in order
    first_error: str | None = None  # "STATUS code: message" of the first failed request

    def percentile(self, q: float) -> float | None:
        """The nearest-rank ``q``-quantile (0 < q <= 1) of the answered latencies."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]

    def to_record(self) -> dict[str, JsonValue]:
        return {
            "url": self.url,
            "capability": self.capability,
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "roles": dict(self.roles),
            "packages": dict(self.packages),
            "latency_s": {"p50": self.percentile(0.50), "p95": self.percentile(0.95)},
            "first_error": self.first_error,
        }


def _error_of(response: httpx.Response) -> LabError:
    """The server's error answer as an error of the family it came from: by the body's
    stable code, else by the status (the server's one table, read backwards)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    text = f"the server answered {response.status_code}"
    text += f" {code}: {message}" if code and message else f": {response.text[:200]}"
    families = [family for family, _ in ERROR_STATUS]
    for family in families:
        if any(c.code == code for c in (family, *_subclasses(family))):
            return family(text)
    for family, status in ERROR_STATUS:
        if status == response.status_code:
            return family(text)
    return InvalidRequest(text) if response.status_code < 500 else LabError(text)


def _subclasses(family: type[LabError]) -> list[type[LabError]]:
    out = []
    for sub in family.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def send_traffic(
    url: str,
    capability: str,
    bodies: Sequence[Mapping[str, JsonValue]],
    *,
    count: int,
    timeout: float = 120.0,
    on_answer: Callable[[int], None] | None = None,
) -> tuple[TrafficSummary, LabError | None]:
    """POST ``count`` requests (:func:`request_body`) to ``url``'s predict route, one at a
    time. ``on_answer(n)`` is called after each of them. Returns the summary and, when
    any request failed, the first failure as an error of its family (a failure before
    any answer stops the run: the same request would fail again).

    Raises:
        Unavailable: no server answers at ``url``, or it stopped answering.
        InvalidRequest: nothing to send, or a timeout that is not a positive number.
    """
    import httpx

    if not bodies or count < 1:
        raise InvalidRequest("no requests to send")
    if not (math.isfinite(timeout) and timeout > 0):
        raise InvalidRequest(f"--timeout is a positive number of seconds (got {timeout})")
    base = loopback_url(url)
    route = f"/v1/{urllib.parse.quote(capability, safe='')}/predict"
    http = httpx.Client(base_url=base, timeout=timeout, trust_env=False)  # no proxies
    roles: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    latencies: list[float] = []
    errors, first = 0, None
    sent = 0
    try:
        for i in range(count):
            body = request_body(bodies, i)
            t0 = time.perf_counter()
            try:
                r = http.post(route, json=body)
            except httpx.TransportError as e:
                raise _unreachable(base, sent, e) from e
            sent += 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
                answer = r.json()
                roles[str(answer.get("role"))] += 1
                packages[str(answer.get("package"))] += 1
            else:
                errors += 1
                first = first or _error_of(r)
                if not latencies:
                    break
            if on_answer is not None:
                on_answer(sent)
    finally:
        http.close()
    summary = TrafficSummary(
        url=base,
        capability=capability,
        sent=sent,
        answered=len(latencies),
        errors=errors,
        roles=dict(roles),
        packages=dict(packages),
        latencies_s=tuple(latencies),
        first_error=None if first is None else first.message,
    )
    return summary, first


def _unreachable(base: str, sent: int, error: Exception) -> Unavailable:
    what = type(error).__name__
    if sent == 0:
        return Unavailable(
            f"no server answers at {base} ({what})",
            hint="start one with 'breedlab serve' (with --json it prints its URL) and pass "
            "that URL as --url",
        )
    return Unavailable(
        f"the server at {base} stopped answering after {sent} request(s) ({what})",
        hint="is it still running? its log says why it stopped",
    )
