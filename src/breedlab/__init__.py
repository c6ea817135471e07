"""breedlab: a conservative, offline model breeding lab.

The map (seed "Minimal architecture"; DESIGN.md §2)::

    breedlab.registry    source registry: content-addressed packages, blobs, manifests
    breedlab.signing     Ed25519 keys, DSSE envelopes, in-toto / SLSA statements
    breedlab.ledger      hash-chained events, Merkle checkpoints, aliases, approvals
    breedlab.factory     allowlisted operators run in a sandbox          (challenger loop)
    breedlab.evaluator   frozen suites and metrics                        (challenger loop)
    breedlab.viability   paired comparisons, gates, decisions             (challenger loop)
    breedlab.release     shadow, canary, promotion, rollback              (release controls)
    breedlab.serving     router, shadow mirror, served models, canary runs (below lab)
    breedlab.lab         Lab: wires the components from the lab's config; THE library API
    breedlab.cli         the ``breedlab`` console script, a thin shell over Lab

Base modules every component may use: ``errors``, ``digest``, ``canonical``, ``clock``,
``interrupts`` (SIGINT/SIGTERM stop a long command at a safe point).
Imports point down: base < signing < registry, ledger < factory, evaluator, viability,
release < serving < lab < http, cli.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
