"""What a layer is bound to: the array namespace, device, parameter dtype and random seed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Context"]


@dataclass(frozen=True)
class Context:
    xp: Any
    device: Any
    dtype: Any  # the parameters' dtype (an xp dtype)
    seed: int
