"""The ``torch`` family: registered architectures in ``config.json`` + ``model.safetensors``.

``config.json`` (canonical JSON) names the architecture and its sizes::

    {"architecture": "mlp", "classes": 10, "family": "torch", "hidden": [128, 64], "inputs": 64}
    {"architecture": "cnn", "channels": [16, 32], "classes": 10, "family": "torch",
     "hidden": [64], "image": [8, 8], "inputs": 64}

An MLP for tabular features adds ``"standardize": true``: its weights then hold the
training split's per-feature mean and standard deviation (see :class:`MLP`).

Only architectures in :data:`ARCHITECTURES` load: a package cannot bring code. Weights are
read with safetensors; a weight-only quantized file (``breedlab.tensors.quantized``) is
dequantized to fp32 on load. Submodules have stable names (``hidden.0``, ``conv.1``,
``head``) so LoRA can target them and merges can match tensors by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from breedlab import canonical
from breedlab.errors import IntegrityError, InvalidRequest
from breedlab.families.base import DEFAULT_MAX_BYTES

__all__ = [
    "ARCHITECTURES",
    "CNN",
    "CONFIG_FILE",
    "MLP",
    "WEIGHTS_FILE",
    "TorchFamily",
    "TorchModel",
    "build_module",
    "check_size",
    "parameter_count",
    "save_torch_model",
    "set_input_statistics",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


_FLOAT32 = 4


def _ints(config: Mapping[str, Any], key: str) -> list[int]:
    value = config.get(key)
    # bool is an int to Python; a width of `true` is a bad type, not a width of 1.
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise InvalidRequest(f"config '{key}' must be a non-empty list of positive integers")
    return list(value)


def _int(config: Mapping[str, Any], key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidRequest(f"config '{key}' must be a positive integer")
    return value


def _linear_parameters(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in pairwise(sizes))


def _mlp_parameters(config: Mapping[str, Any]) -> int:
    sizes = [_int(config, "inputs"), *_ints(config, "hidden"), _int(config, "classes")]
    statistics = 2 * sizes[0] if _standardize(config) else 0  # input_mean, input_std
    return _linear_parameters(sizes) + statistics


def _cnn_parameters(config: Mapping[str, Any]) -> int:
    image, channels = _ints(config, "image"), _ints(config, "channels")
    if len(image) != 2:
        raise InvalidRequest("config 'image' must be [height, width]")
    conv = sum(a * b * 9 + b for a, b in pairwise([1, *channels]))
    flat = channels[-1] * (image[0] // 2) * (image[1] // 2)
    sizes = [flat, *_ints(config, "hidden"), _int(config, "classes")]
    return conv + _linear_parameters(sizes)


#: Parameters of each architecture, computed from the config alone (nothing allocated).
_PARAMETERS: Mapping[str, Callable[[Mapping[str, Any]], int]] = {
    "mlp": _mlp_parameters,
    "cnn": _cnn_parameters,
}
_SIZE_KEYS = ("inputs", "hidden", "channels", "image", "classes")


def _largest(value: Any) -> int:
    """The largest size in a validated size field (0 for a field the architecture lacks)."""
    values = value if isinstance(value, list) else [value]
    return max((v for v in values if isinstance(v, int)), default=0)


def parameter_count(config: Mapping[str, Any]) -> int:
    """The parameters ``config`` describes, by arithmetic: nothing is built or allocated.

    Raises:
        InvalidRequest: unknown architecture, or a size that is missing or not a positive
            integer (``true`` is not one); the message names the field.
    """
    arch = config.get("architecture")
    if not isinstance(arch, str) or arch not in _PARAMETERS:
        raise InvalidRequest(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return _PARAMETERS[arch](config)


def check_size(config: Mapping[str, Any], max_bytes: int) -> int:
    """Refuse a config whose float32 weights exceed ``max_bytes``; its parameter count.

    Run before anything is allocated (a ``hidden`` of 2**31 would ask for 512 GiB).

    Raises:
        InvalidRequest: as :func:`parameter_count`, or over budget (naming the largest
            size field).
    """
    count = parameter_count(config)
    if count * _FLOAT32 > max_bytes:
        field = max(_SIZE_KEYS, key=lambda k: _largest(config.get(k)))
        raise InvalidRequest(
            f"config '{field}' {config[field]} makes {count} float32 parameters "
            f"({count * _FLOAT32 / 2**20:.1f} MiB), over the budget of {max_bytes / 2**20:g} MiB"
        )
    return count


class MLP(nn.Module):
    """inputs → [Linear → ReLU] × len(hidden) → head.

    With ``standardize`` (tabular features on different scales, e.g. wine's proline in
    the hundreds beside hue near 1) the inputs are first centred and scaled by the
    buffers ``input_mean`` and ``input_std``, stored with the weights: the training
    split's statistics travel with the model (:func:`set_input_statistics`)."""

    input_mean: torch.Tensor
    input_std: torch.Tensor

    def __init__(
        self, inputs: int, hidden: list[int], classes: int, *, standardize: bool = False
    ) -> None:
        super().__init__()
        sizes = [inputs, *hidden]
        self.standardize = standardize
        if standardize:
            self.register_buffer("input_mean", torch.zeros(inputs))
            self.register_buffer("input_std", torch.ones(inputs))
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.head = nn.Linear(sizes[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            x = (x - self.input_mean) / self.input_std
        for layer in self.hidden:
            x = torch.relu(layer(x))
        logits: torch.Tensor = self.head(x)
        return logits


class CNN(nn.Module):
    """A small convnet for square images: [Conv3×3 → ReLU] × n, max-pool, MLP head."""

    def __init__(
        self, image: list[int], channels: list[int], hidden: list[int], classes: int
    ) -> None:
        super().__init__()
        if len(image) != 2:
            raise InvalidRequest("config 'image' must be [height, width]")
        self.image = (image[0], image[1])
        sizes = [1, *channels]
        self.conv = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size=3, padding=1) for a, b in pairwise(sizes)
        )
        flat = channels[-1] * (image[0] // 2) * (image[1] // 2)
        dims = [flat, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, *self.image)
        for conv in self.conv:
            x = torch.relu(conv(x))
        x = torch.nn.functional.max_pool2d(x, 2).flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        logits: torch.Tensor = self.head(x)
        return logits


def _standardize(config: Mapping[str, Any]) -> bool:
    value = config.get("standardize", False)
    if not isinstance(value, bool):
        raise InvalidRequest("config 'standardize' must be true or false")
    if value and config.get("architecture") != "mlp":
        raise InvalidRequest("config 'standardize' is for architecture 'mlp'")
    return value


def _mlp(config: Mapping[str, Any]) -> nn.Module:
    return MLP(
        _int(config, "inputs"),
        _ints(config, "hidden"),
        _int(config, "classes"),
        standardize=_standardize(config),
    )


def set_input_statistics(module: nn.Module, x: torch.Tensor) -> None:
    """Set a standardizing MLP's ``input_mean`` and ``input_std`` from the rows ``x`` (a
    feature constant in ``x`` keeps scale 1); a module without them is left alone."""
    if not isinstance(module, MLP) or not module.standardize:
        return
    with torch.no_grad():
        rows = x.to(torch.float32)
        std = rows.std(dim=0, unbiased=False)
        module.input_mean.copy_(rows.mean(dim=0))
        module.input_std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))


def _cnn(config: Mapping[str, Any]) -> nn.Module:
    return CNN(
        _ints(config, "image"), _ints(config, "channels"), _ints(config, "hidden"),
        _int(config, "classes"),
    )  # fmt: skip


#: The catalogue of loadable architectures: a package names one, it cannot bring code.
ARCHITECTURES: Mapping[str, Callable[[Mapping[str, Any]], nn.Module]] = {
    "mlp": _mlp,
    "cnn": _cnn,
}


def build_module(config: Mapping[str, Any], *, max_bytes: int = DEFAULT_MAX_BYTES) -> nn.Module:
    """A freshly initialised module for ``config`` (seed torch first for determinism).

    Raises:
        InvalidRequest: as :func:`check_size`, checked before the module is built.
    """
    check_size(config, max_bytes)
    return ARCHITECTURES[str(config["architecture"])](config)


class TorchModel:
    family = "torch"

    def __init__(self, config: Mapping[str, Any], module: nn.Module) -> None:
        self.config = dict(config)
        self._module = module.eval()

    @property
    def module(self) -> nn.Module:
        return self._module

    def logits(self, x: npt.NDArray[Any] | torch.Tensor) -> torch.Tensor:
        inputs = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float32))
        with torch.no_grad():
            out: torch.Tensor = self._module(inputs.to(torch.float32))
        return out

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        probs = torch.softmax(self.logits(x).to(torch.float64), dim=1)
        return np.asarray(probs.numpy(), dtype=np.float64)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._module.parameters())


def read_config(folder: Path) -> dict[str, Any]:
    try:
        config = canonical.decode((folder / CONFIG_FILE).read_bytes())
    except FileNotFoundError:
        raise IntegrityError(f"{folder} has no {CONFIG_FILE}") from None
    if not isinstance(config, dict) or config.get("family") != "torch":
        raise IntegrityError(f"{folder}/{CONFIG_FILE} is not a torch-family config")
    return config


class TorchFamily:
    name = "torch"

    def load(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> TorchModel:
        """Build the architecture ``config.json`` names and fill it, strictly.

        The config's sizes are checked against ``max_bytes`` before anything is built.
        """
        from breedlab.tensors.quantized import load_state_dict

        config = read_config(folder)
        module = build_module(config, max_bytes=max_bytes)
        state = load_state_dict(folder / WEIGHTS_FILE)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise IntegrityError(f"{folder}: weights do not fit the architecture: {e}") from e
        return TorchModel(config, module)


def save_torch_model(folder: Path, config: Mapping[str, Any], module: nn.Module) -> None:
    """Write ``config.json`` (canonical) and ``model.safetensors`` (fp32, contiguous)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_bytes(canonical.encode({**dict(config), "family": "torch"}))
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
