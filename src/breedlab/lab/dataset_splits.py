"""A capability's data splits stored the one way: each split's dataset folder imported
as a signed ``dataset`` package named ``CAP-SPLIT`` and aliased ``CAP@data-SPLIT``.

Used by the built-in digits bootstrap and by ``dataset import``; what goes into the
folders is theirs (``breedlab.datasets`` owns the format).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from breedlab.supply import packages as supply_packages
from breedlab.supply.aliases import point
from breedlab.supply.values import PackageInfo

if TYPE_CHECKING:
    from breedlab.supply.service import Supply

__all__ = ["store_split"]


def store_split(
    supply: Supply,
    folder: Path,
    *,
    capability: str,
    split: str,
    license: str,
    sign_with: str | None,
    reason: str,
) -> PackageInfo:
    """Import ``folder`` as the ``split`` dataset of ``capability`` and point
    ``CAP@data-SPLIT`` at it (``reason`` goes with the alias move)."""
    info = supply_packages.import_path(
        supply,
        folder,
        kind="dataset",
        capability=capability,
        license=license,
        name=f"{capability}-{split}",
        sign_with=sign_with,
    )
    point(supply, capability, f"data-{split}", info.id, reason=reason)
    return info
