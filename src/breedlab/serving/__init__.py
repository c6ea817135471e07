"""Serving (DESIGN §2, §11): which model answers a request, and what it records.

A service below ``lab``: it may import the base modules, ``ledger``, ``registry``,
``release``, ``authority`` and ``families``; never ``lab``, ``http``, ``demo`` or
``cli``. What it needs of the registry and of the release controller is written down as
Protocols in ``supplier`` (the ``Lab`` satisfies them today, the supply service later).

- ``router``: :class:`~breedlab.serving.router.RoutingTable` (immutable, per capability
  the verified, loaded champion, previous, shadow and canary) and the
  :class:`~breedlab.serving.router.Router` that swaps it when the ledger head moves,
  answers requests, mirrors them and aborts a canary automatically.
- ``mirror``: :class:`~breedlab.serving.mirror.ShadowMirror` -- the shadow process's
  lifecycle (pipes, restart backoff) and the bounded queue into it.
- ``shadow_process``: the shadow process itself (a fresh interpreter; binary frames).
- ``served_models``: :class:`~breedlab.serving.served_models.ServedModel` and
  :func:`~breedlab.serving.served_models.load_served` (verify, materialise, load).
- ``request_inputs``: :class:`~breedlab.serving.request_inputs.InputSchema`, a request's
  inputs (by position, by tabular feature name, or a text) read by the contract.
- ``canary_run``: :class:`~breedlab.serving.canary_run.CanaryRun`, a running canary's
  monitors; its events are written through an injected ``record``.
- ``release_logs``: shadow evidence records and pairs; what a run's log must offer.
- ``supplier``: the Protocols above.

Nothing is re-exported here: the shadow process imports ``serving.shadow_process``
and should not load the rest.
"""
