"""A new lab on disk (DESIGN §3): its folders, its ``breedlab.toml`` and its first keys.

Owns what ``init`` writes before a lab can be opened: ``objects/``, ``keys/`` (0700) and
``work/``, the config with the lab key's id pinned from the start, then the lab key
(which endorses every later key) and the factory key. Leaves opening a lab to
:class:`~breedlab.supply.service.Supply` and the keys' events to ``keys``.
"""

from __future__ import annotations

import os
from pathlib import Path

from breedlab.config import CONFIG_NAME, LabConfig, default_config_text, load_config
from breedlab.errors import Conflict, InvalidRequest
from breedlab.signing.keys import KeyPair, Role
from breedlab.supply.keys import add_key, generate_key
from breedlab.supply.service import Supply

__all__ = ["create_layout", "first_keys"]


def create_layout(path: Path, *, name: str | None = None) -> tuple[LabConfig, KeyPair]:
    """Make the folders and the config of a lab at ``path``; returns the config and the
    lab key (not saved yet: :func:`first_keys` saves and trusts it).

    Raises:
        Conflict: a lab exists there already.
        InvalidRequest: ``path`` exists and is a non-empty folder without a lab.
    """
    path = path.resolve()
    if (path / CONFIG_NAME).exists():
        raise Conflict(f"a lab exists already at {path}")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidRequest(f"{path} exists and is not an empty folder")
    path.mkdir(parents=True, exist_ok=True)
    for folder in ("objects", "keys", "work"):
        (path / folder).mkdir(exist_ok=True)
    os.chmod(path / "keys", 0o700)
    # The lab key first, so its id is pinned in the config from the start.
    lab_key = KeyPair.generate("lab")
    text = default_config_text(name or path.name, lab_key_id=lab_key.keyid)
    (path / CONFIG_NAME).write_text(text, "utf-8")
    return load_config(path), lab_key


def first_keys(supply: Supply, lab_key: KeyPair) -> None:
    """Create the store and the ledger, then trust the lab key and a factory key."""
    supply.blobs.ensure()
    supply.ledger.create()
    add_key(supply, lab_key, Role.LAB)
    generate_key(supply, supply.config.factory_key, Role.FACTORY)
