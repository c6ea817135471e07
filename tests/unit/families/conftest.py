"""Shared setup for the model-family tests: one torch thread (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    # 2 threads on this shared 2-core box ran 4-80x slower than 1 (notes/operators.md §1).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
