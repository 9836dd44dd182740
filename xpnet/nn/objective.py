"""The objective: the loss value and its gradient with respect to the network's logits.

The network's last layer produces logits z; its output head (sigmoid, softmax or identity)
maps them to predictions. A loss fused with the head (binary cross-entropy with sigmoid,
cross-entropy with softmax) goes straight from z: dz = (p - y)/n. Any other loss takes the
head's outputs and its gradient goes back through the head: dz = head'(d loss / d out).
Logits from a float16/bfloat16 forward are taken to the targets' dtype (float32) first, so the
loss and dz are float32. Anything with ``objective(z, Y) -> (value, dz)`` can stand in (the
estimators use their own).
"""
from __future__ import annotations

from typing import Any

from .._xp import Array, fast_path
from .losses import DEFAULT_LOSS, get_loss

__all__ = ["Objective"]


class Objective:
    """``objective(z, Y) -> (batch-mean loss, d loss / d z)`` for a network's output head.

    ``network``: supplies ``xp``, ``output`` (the head's name) and ``output_layer``;
    ``loss``: a name from :data:`xpnet.nn.losses.LOSSES` (None: the head's default: bce,
    cross_entropy or mse). A backend's fused kernel for the loss is used where registered.
    """

    def __init__(self, network: Any, loss: str | None = None):
        self.xp, self.output, self.head = network.xp, network.output, network.output_layer
        self.loss = get_loss(DEFAULT_LOSS[self.output] if loss is None else loss)
        if self.loss.head is not None and self.loss.head != self.output:
            raise ValueError(f"loss {self.loss.name!r} works on {self.loss.head} outputs but the network's output "
                             f"is {self.output!r}: pass output={self.loss.head!r} or choose another loss")
        self.fused = self.loss.head is not None
        self._kernel = fast_path(self.xp, self.loss.kernel) if self.loss.kernel else None

    def __call__(self, z: Array, Y: Array) -> tuple[Array, Array]:
        if z.dtype != Y.dtype:
            z = self._wide(z, Y)
        if self._kernel is not None:
            return self._kernel(z, Y)
        if self.fused:
            return self.loss.fn(self.xp, z, Y)
        out, cache = self.head.forward(z)
        value, dout = self.loss.fn(self.xp, out, Y)
        return value, self.head.backward(dout, cache)

    def _wide(self, z: Array, Y: Array) -> Array:
        """Logits of a low-precision forward, in the targets' (master) dtype: the loss is float32."""
        return z if z.dtype == Y.dtype else self.xp.astype(z, Y.dtype)

    def value(self, z: Array, Y: Array) -> Array:
        """The loss alone (evaluation)."""
        z = self._wide(z, Y)
        if self.fused:
            return self(z, Y)[0]
        return self.loss.fn(self.xp, self.head.forward(z)[0], Y)[0]

    def hits(self, z: Array, Y: Array) -> Array | None:
        """Correct predictions in a batch (0-d device array); None for regression."""
        xp = self.xp
        if self.output == "softmax":
            return xp.count_nonzero(xp.argmax(z, axis=1) == xp.argmax(Y, axis=1))
        if self.output == "sigmoid":
            return xp.count_nonzero((z > 0.0) == (Y > 0.5))
        return None

    def hit_denominator(self, n: int, Y: Array) -> int:
        """What ``hits`` summed over n rows is divided by for an accuracy."""
        return n * (1 if self.output == "softmax" else Y.shape[1])

    def __repr__(self) -> str:
        return f"Objective({self.loss.name!r} on a {self.output} head{', fused' if self.fused else ''})"
