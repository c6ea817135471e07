"""Tensor file formats: plain safetensors written incrementally, and weight-only
quantized weights in plain safetensors.

- ``stream``: an incremental safetensors writer (header first, then each tensor's bytes
  as it is produced), so merges and quantization need O(largest tensor) memory; output
  byte-identical to ``safetensors.torch.save_file``.
- ``quantized``: int8 per output channel and int4 in groups of 32, their file layout, and
  ``load_state_dict`` -- how every torch-family model is read, dequantizing on load.

Model families read with these and operators write with them, so they sit below both.
Nothing here unpickles: only safetensors are read or written.
"""

from __future__ import annotations

__all__: list[str] = []
