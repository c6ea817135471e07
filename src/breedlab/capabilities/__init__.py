"""Built-in capability contracts shipped with breedlab (``digits``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["contract_path"]


def contract_path(name: str) -> Path:
    """The path of a built-in contract file, e.g. ``contract_path("digits")``."""
    return Path(str(resources.files(__package__).joinpath(f"{name}.toml")))
