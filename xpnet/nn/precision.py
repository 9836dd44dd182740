"""The precision policy: which dtype the matrix products and activations run in.

Master parameters, gradients and optimizer state stay in the network's dtype (float32); with
``compute="float16"`` or ``"bfloat16"`` each training step casts the parameters once to the
compute dtype, runs forward and backward there, computes the loss and its gradient in float32,
and lands the gradients in the float32 master buffer. BatchNorm statistics stay float32.
float16 has a narrow range (6e-5 … 65504): its gradients use dynamic loss scaling
(:class:`xpnet.optim.LossScaler`); bfloat16 has float32's range and needs none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _validate as check

__all__ = ["Precision", "as_precision", "supported", "PRECISIONS"]

PRECISIONS = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Precision:
    """``compute``: float32, float16 or bfloat16. float16 trains with dynamic loss scaling: the loss
    is multiplied by ``init_scale`` (2¹⁶) before backward; a step whose gradients overflow is skipped
    and the scale halved; after ``growth_interval`` clean steps in a row the scale doubles."""

    compute: str = "float32"
    init_scale: float = 2.0 ** 16
    growth_interval: int = 2000

    def __post_init__(self) -> None:
        check.choice("precision", self.compute, PRECISIONS)
        check.real("init_scale", self.init_scale, 0.0, low_open=True)
        check.integer("growth_interval", self.growth_interval, low=1)

    @property
    def low(self) -> bool:
        """Whether compute runs in a narrower dtype than the float32 master copy."""
        return self.compute != "float32"

    @property
    def loss_scaling(self) -> bool:
        return self.compute == "float16"

    def describe(self) -> str:
        if not self.low:
            return "float32"
        return f"{self.compute} compute, float32 master weights" + (", dynamic loss scaling" if self.loss_scaling
                                                                     else "")


def as_precision(value: Any) -> Precision:
    """A :class:`Precision` from a name or a Precision."""
    if isinstance(value, Precision):
        return value
    return Precision(check.choice("precision", value, PRECISIONS))


def supported(policy: Precision, backend: Any, dtype: str) -> Precision:
    """``policy`` if ``backend`` computes in its dtype over ``dtype`` master parameters; else a one-line
    ValueError (low precisions keep float32 masters; array-api-strict has neither float16 nor bfloat16)."""
    if policy.low:
        if dtype != "float32":
            raise ValueError(f"precision={policy.compute!r} keeps float32 master parameters: use dtype='float32' "
                             f"(got {dtype!r})")
        try:
            backend.dtype(policy.compute)
        except ValueError:
            raise ValueError(f"backend {backend.spec!r} has no {policy.compute}: use precision='float32' "
                             f"or a backend with {policy.compute} ("
                             f"{'torch' if policy.compute == 'bfloat16' else 'numpy, cupy or torch'})") from None
    return policy
