"""What every model family provides (the protocols), and the default weight budget.

Kept apart from the package's ``__init__`` (which picks a family by name) so the family
modules import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_MAX_BYTES", "Family", "Model"]

#: The float32 weight bytes a model's config may describe when no capability budget
#: (``[budget] memory_mib``) is at hand; checked before anything is allocated.
DEFAULT_MAX_BYTES = 2 << 30


class Model(Protocol):
    """A loaded model: a torch module plus how to turn inputs into class probabilities."""

    @property
    def family(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def module(self) -> Any: ...

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (n, classes), float64, rows summing to 1."""
        ...

    def parameter_count(self) -> int: ...


class Family(Protocol):
    @property
    def name(self) -> str: ...

    def load(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Model:
        """Load ``folder``, refusing a config that describes more than ``max_bytes`` of
        float32 weights before anything is allocated."""
        ...
