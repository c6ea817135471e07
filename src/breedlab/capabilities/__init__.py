"""Built-in capability contracts shipped with breedlab (``digits``, ``reviews``), and beside them in
``recipes/`` each one's operator recipe (read by ``breedlab.lab.recipes``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from breedlab.errors import NotFound

__all__ = ["builtin_names", "contract_path", "recipe_path", "resolve_contract"]


def contract_path(name: str) -> Path:
    """The path of a built-in contract file, e.g. ``contract_path("digits")``."""
    return Path(str(resources.files(__package__).joinpath(f"{name}.toml")))


def recipe_path(name: str) -> Path:
    """The path of a built-in recipe file, e.g. ``recipe_path("reviews-ci")``."""
    return Path(str(resources.files(__package__).joinpath("recipes", f"{name}.toml")))


def builtin_names() -> tuple[str, ...]:
    """The built-in contracts' names."""
    files = resources.files(__package__).iterdir()
    return tuple(sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml")))


def resolve_contract(ref: str | Path) -> Path:
    """A contract file: ``ref`` itself when it names an existing file, else the built-in
    contract of that name (``breedlab capability add digits`` works from any folder).

    Raises:
        NotFound: neither a file nor a built-in contract's name.
    """
    path = Path(ref)
    if path.exists():
        return path
    if str(ref) in builtin_names():
        return contract_path(str(ref))
    raise NotFound(
        f"no contract file {str(ref)!r}, and no built-in contract of that name",
        hint=f"give a .toml file, or one of: {', '.join(builtin_names())}",
    )
