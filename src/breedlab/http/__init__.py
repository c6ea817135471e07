"""The HTTP shell (DESIGN §11): ``breedlab serve`` runs :func:`create_app` under uvicorn.

Modules: ``app`` (the FastAPI app: predict, metrics, health and admin routes; the one
table from error family to HTTP status), ``bodies`` (the request and answer bodies,
validated at the edge), ``limits`` (bounds on a request body),
``traffic`` (the client side: requests made from a dataset, sent to a server on loopback
only, and their summary; ``breedlab traffic``). Every route is parse, one call into the
lab's release controller, render. Which model answers, and the shadow and canary
machinery, are :mod:`breedlab.serving`'s (the router the lab's release controller makes).
"""

from __future__ import annotations

from breedlab.http.app import ERROR_STATUS, create_app, ensure_admin_token, listen, serving
from breedlab.serving.router import Router, RoutingTable

__all__ = [
    "ERROR_STATUS",
    "Router",
    "RoutingTable",
    "create_app",
    "ensure_admin_token",
    "listen",
    "serving",
]
