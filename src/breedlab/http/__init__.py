"""The HTTP shell (DESIGN §11): ``breedlab serve`` runs :func:`create_app` under uvicorn.

Modules: ``app`` (the FastAPI app: predict, metrics, health and admin routes; the one
table from error family to HTTP status), ``routing`` (the immutable routing table, its
atomic swap when an alias moves, the shadow mirror and the canary's automatic abort),
``traffic`` (the client side: requests made from a dataset, sent to a server on loopback
only, and their summary; ``breedlab traffic``). Every route is parse, one call into the
lab's release controller, render.
"""

from __future__ import annotations

from breedlab.http.app import ERROR_STATUS, create_app, ensure_admin_token, listen, serving
from breedlab.http.routing import Router, RoutingTable

__all__ = [
    "ERROR_STATUS",
    "Router",
    "RoutingTable",
    "create_app",
    "ensure_admin_token",
    "listen",
    "serving",
]
