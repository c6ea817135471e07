"""The registry service (DESIGN §2, "services below lab"): packages, keys, aliases,
lineage and audit over a lab's store and ledger.

- ``service``: :class:`Supply` -- the config, clock, blob store, ledger and workspace
  the verbs work on, the state of automatic checkpoints and the per-command
  verification cache (``with supply.command():`` verifies each package once).
- ``packages``: import, store, record and resolve packages (capability contracts
  among them); ``require_intact`` before a verb uses one.
- ``approvals``: sign, approve and revoke a registered package.
- ``keys``: generate, add, endorse and revoke keys; the signer each verb needs.
- ``aliases``: the one alias move (``append_move``), ``set_alias`` and ``point``.
- ``lineage``: ancestors and descendants; a package's folder rebuilt from the store;
  a round's decision record.
- ``audit``: verify packages, the store, the evidence and the ledger; checkpoints,
  witness files, attested history, leftovers of interrupted writes.
- ``layout``: a new lab's folders, config and first keys.
- ``verification``: the checks themselves (pure over a reader and a blob store).
- ``conformance``: a model answers its capability's contract.
- ``evidence``: sealed release evidence logs (the serving side appends to them).
- ``witness``: a signed tree head kept outside the lab, and its consistency proof.
- ``workspace``: packages materialised for jobs, job folders.
- ``values``: the frozen results the service (and the Lab) returns.

Each verb is a function taking the :class:`Supply` first. Imports point down: supply
must not import ``breedlab.lab``, ``serving``, ``http``, ``demo`` or ``cli``; torch
stays out (a model is loaded only to probe its contract, through ``breedlab.families``).
"""

from __future__ import annotations

from breedlab.supply.service import Supply

__all__ = ["Supply"]
