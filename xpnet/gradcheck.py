"""Finite-difference checks of the hand-derived gradients, for whole networks and single layers.

``gradcheck(model, X, y)`` compares the backward pass of a network (:class:`~xpnet.Network`) with
central differences ``(L(p + εe_j) - L(p - εe_j)) / 2ε`` in float64 (a float32 model is
checked through a float64 copy on the same backend, its parameters untouched), coordinate
by coordinate (all of them for small networks, a random subset for large ones), plus one
directional derivative along a random unit direction d, ``(L(p + εd) - L(p - εd)) / 2ε``
against ``g·d``, which covers every coordinate at once. Dropout counters and buffers are put
back before every evaluation, so all evaluations see the same masks. Arrays are named by the
network's layout ("3.W", "1.body.0.gamma").

``check_layer(layer, x)`` does the same for one layer of the contract (any layer, container or
not, built-in or your own): the scalar is ``L = Σ y ⊙ r`` for a fixed random r, so
``backward(r, cache)`` must return dL/dx; every parameter of the layer (and of the layers inside
it) is checked too. It works on a float64 copy bound to fresh buffers: the layer is not touched.

Both return a :class:`GradcheckReport`: per-array relative errors, a verdict, and a
readable table (``print(report)``). An array passes when
``‖num - ana‖ ≤ rtol · max(‖num‖, ‖ana‖) + atol · sqrt(m)`` over its m checked coordinates
(atol absorbs the rounding noise of the differences, about 1e-16·|L|/ε per coordinate).
"""
from __future__ import annotations

import math
import random as _pyrandom
from dataclasses import dataclass, field
from typing import Any, Callable



from . import random as xrandom
from ._xp import Array, device, fetch, namespace
from .nn import LAYERS, Dense, LeakyReLU, Objective, ReLU, bind_tree, layer_from_config, walk
from .nn._context import Context
from .nn import Network, network_from_config

__all__ = ["gradcheck", "check_layer", "GradcheckReport", "CheckRow", "FULL_CHECK_LIMIT"]

# Above this many parameters, gradcheck(n_coords=None) checks a random subset.
FULL_CHECK_LIMIT = 2000
_DEFAULT_SUBSET = 200
_STREAM = xrandom.STREAMS["check"]  # the random directions (never drawn by training)


@dataclass
class CheckRow:
    """The comparison for one array (or the directional derivative)."""

    name: str
    shape: tuple[int, ...]
    checked: int
    total: int
    max_abs_err: float
    rel_err: float
    numeric_norm: float
    analytic_norm: float
    passed: bool
    note: str = ""


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck` / :func:`check_layer`; truthy when every check passed."""

    subject: str
    rows: list[CheckRow]
    eps: float
    rtol: float
    atol: float
    backend: str
    hints: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if not r.passed]

    @property
    def max_rel_err(self) -> float:
        return max((r.rel_err for r in self.rows), default=0.0)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> CheckRow:
        for r in self.rows:
            if r.name == name or r.name.split(" ")[0] == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        head = (f"gradcheck {self.subject}: " + ("PASSED" if self.passed else
                f"FAILED ({len(self.failures)} of {len(self.rows)} checks over tolerance)")
                + f"  [float64 on {self.backend}, eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g}]")
        cols = ("array", "shape", "checked", "max|num-ana|", "rel. error", "|num|", "|ana|", "result")
        body = [(r.name, "x".join(map(str, r.shape)) or "scalar",
                 "1 dir" if r.name == "directional derivative" else f"{r.checked}/{r.total}",
                 f"{r.max_abs_err:.2e}", f"{r.rel_err:.2e}", f"{r.numeric_norm:.3e}", f"{r.analytic_norm:.3e}",
                 ("ok" if r.passed else "FAIL") + (f" ({r.note})" if r.note else "")) for r in self.rows]
        widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [head] + [("  " + fmt.format(*b)).rstrip() for b in [cols] + body]
        return "\n".join(lines + [f"  -> {h}" for h in self.hints])

    __repr__ = __str__


# ---------------------------------------------------------------- shared machinery
def _unravel(j: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = []
    for s in reversed(shape):
        j, r = divmod(j, s)
        idx.append(r)
    return tuple(reversed(idx))


def _pick(size: int, count: int | None, rng: _pyrandom.Random) -> list[int]:
    if count is None or count >= size:
        return list(range(size))
    return sorted(rng.sample(range(size), count))


def _row(name: str, shape: tuple[int, ...], total: int, num: list[float], ana: list[float], rtol: float,
         atol: float, note: str = "") -> CheckRow:
    diff = [a - b for a, b in zip(num, ana)]
    err = math.sqrt(math.fsum(d * d for d in diff))
    nn, na = math.sqrt(math.fsum(v * v for v in num)), math.sqrt(math.fsum(v * v for v in ana))
    ref = max(nn, na)
    finite = all(math.isfinite(v) for v in num + ana)
    rel = err / ref if ref > 0 else (0.0 if err == 0 else math.inf)
    ok = finite and err <= rtol * ref + atol * math.sqrt(max(len(num), 1))
    return CheckRow(name, tuple(shape), len(num), total, max((abs(d) for d in diff), default=0.0),
                    rel if finite else math.nan, nn, na, ok, note if finite else "non-finite values")


class _Perturbable:
    """Finite differences over a list of named float64 device arrays, perturbed in place."""

    def __init__(self, xp: Any, loss: Callable[[], Array], eps: float):
        self.xp, self.loss, self.eps = xp, loss, eps

    def coordinates(self, arr: Array, coords: list[int]) -> list[Array]:
        """[(L(+ε) - L(-ε)) / 2ε for each flat coordinate] as 0-d device arrays."""
        out = []
        shape = tuple(arr.shape)
        for j in coords:
            idx = _unravel(j, shape)
            orig = arr[idx] * 1.0
            arr[idx] = orig + self.eps
            up = self.loss()
            arr[idx] = orig - self.eps
            down = self.loss()
            arr[idx] = orig
            out.append((up - down) / (2.0 * self.eps))
        return out

    def directional(self, arrays: list[Array], directions: list[Array]) -> Array:
        saved = [a * 1.0 for a in arrays]
        for a, s, d in zip(arrays, saved, directions):
            a[...] = s + self.eps * d
        up = self.loss()
        for a, s, d in zip(arrays, saved, directions):
            a[...] = s - self.eps * d
        down = self.loss()
        for a, s in zip(arrays, saved):
            a[...] = s
        return (up - down) / (2.0 * self.eps)


def _check(xp: Any, fd: _Perturbable, named: list[tuple[str, Array, Array]], n_coords: int | None,
           seed: int, rtol: float, atol: float, dev: Any) -> list[CheckRow]:
    """Per-array coordinate checks plus one directional derivative; one transfer at the end."""
    rng = _pyrandom.Random(seed)
    per_array = None if n_coords is None else max(1, math.ceil(n_coords / max(len(named), 1)))
    picks, numeric, analytic = [], [], []
    for _, arr, grad in named:
        size = math.prod(arr.shape)
        coords = _pick(size, per_array, rng)
        picks.append((coords, size))
        nums = fd.coordinates(arr, coords)
        numeric.append(xp.stack(nums) if nums else xp.zeros((0,), dtype=xp.float64, device=dev))
        flat = xp.reshape(grad, (-1,))
        analytic.append(xp.take(flat, xp.asarray(coords, dtype=xp.int64, device=dev)))
    # directional derivative along a random unit vector over every array
    total = sum(math.prod(a.shape) for _, a, _ in named)
    d = xrandom.normal(xp, (total,), seed, _STREAM, 0, dtype=xp.float64, device=dev)
    d = d / xp.sqrt(xp.vecdot(d, d))
    dirs, off = [], 0
    for _, a, _ in named:
        m = math.prod(a.shape)
        dirs.append(xp.reshape(d[off:off + m], tuple(a.shape)))
        off += m
    num_dir = fd.directional([a for _, a, _ in named], dirs)
    ana_dir = xp.vecdot(xp.concat([xp.reshape(g, (-1,)) for _, _, g in named]), d)
    host = fetch(xp, numeric + analytic + [num_dir, ana_dir], xp.float64)
    k = len(named)
    rows = []
    for i, (name, arr, _) in enumerate(named):
        coords, size = picks[i]
        rows.append(_row(name, tuple(arr.shape), size, host[i], host[k + i], rtol, atol,
                         "" if len(coords) == size else "random subset"))
    rows.append(_row("directional derivative", (total,), total, host[2 * k], host[2 * k + 1], rtol, atol,
                     "random unit direction, all coordinates"))
    return rows


def _float64_ok(xp: Any, dev: Any) -> None:
    if "float64" not in xp.__array_namespace_info__().dtypes(device=dev, kind="real floating"):
        raise ValueError(f"gradcheck needs float64, which {xp.__name__} does not support on {dev}")


# ---------------------------------------------------------------- whole networks
def _float64_copy(model: Network) -> Network:
    """The model itself when it is float64 (it is restored after the check), else a float64 copy."""
    if model.dtype_name == "float64":
        return model
    try:
        copy = network_from_config(model.config(), backend=model.backend, dtype="float64")
    except ValueError as exc:
        raise ValueError(f"gradcheck: a float64 copy of the model cannot be built from its config ({exc}); "
                         f"register custom layers with @xpnet.nn.register, or build the model with "
                         f"dtype='float64'") from None
    xp = model.xp
    copy.params[...] = xp.astype(model.params, xp.float64)
    copy.buffers[...] = xp.astype(model.buffers, xp.float64)
    copy.counters = model.counters
    if copy.output != model.output:
        copy.set_output(model.output)
    return copy


def _kinked_inputs(model: Network, Xd: Array) -> Array:
    """The pre-activations that enter ReLU/LeakyReLU (of Dense layers and standalone ones), flattened."""
    xp, seen = model.xp, []
    leaves = [layer for _, layer in walk(model.root) if not layer.children()]
    originals = {}
    for layer in leaves:
        kinked = isinstance(layer, (ReLU, LeakyReLU)) or (
            isinstance(layer, Dense) and isinstance(layer.act, (ReLU, LeakyReLU)) and not layer.head)
        if kinked:
            originals[id(layer)] = layer

            def forward(x: Array, training: bool = False, _l: Any = layer) -> Any:
                seen.append(x @ _l.W + _l.b if isinstance(_l, Dense) else x)
                return type(_l).forward(_l, x, training)
            layer.forward = forward
    try:
        with model.frozen_state():
            model.root.forward(Xd, True)
    finally:
        for layer in originals.values():
            del layer.forward
    return xp.concat([xp.reshape(a, (-1,)) for a in seen]) if seen else xp.zeros((0,), dtype=Xd.dtype)


def gradcheck(model: Any, X: Any, y: Any, loss: str | None = None, l2: float = 0.0, eps: float = 1e-6,
              n_coords: int | None = None, seed: int = 0, rtol: float = 1e-6,
              atol: float = 1e-8) -> GradcheckReport:
    """Check ``model``'s backward pass against central finite differences in float64.

    The loss is what training minimizes: batch-mean ``loss`` (default: the output's) plus
    ``l2/2 ΣW²``, in training mode with dropout masks frozen. ``n_coords``: coordinates checked,
    split evenly over the parameter arrays (None: all of them up to ``FULL_CHECK_LIMIT``
    parameters, else 200). A directional derivative along a random unit direction is always
    checked too. ``model`` is not modified. Returns a :class:`GradcheckReport` (``print`` it).
    """
    if not isinstance(model, Network):
        raise ValueError(f"gradcheck needs an xpnet network, got {type(model).__name__} (use check_layer for a layer)")
    xp, dev = model.xp, model.backend.device
    _float64_ok(xp, dev)
    m = _float64_copy(model)
    Xd, Yd = m.as_input(X), m.targets(y)
    objective, l2 = Objective(m, loss), float(l2)
    saved_params = m.params * 1.0
    with m.frozen_state():
        def value() -> Array:
            with m.frozen_state(grads=False):
                z, _ = m.root.forward(Xd, True)
                v = objective.value(z, Yd)
                return v + xp.vecdot(m._decay_params, m._decay_params) * (0.5 * l2) if l2 else v

        with m.frozen_state(grads=False):
            m.train_step(Xd, Yd, objective, l2)
        grads = m.grads * 1.0
        named = [(e.name, e.view(m.params, xp), e.view(grads, xp)) for e in m.layout.params]
        if n_coords is None and m.n_params > FULL_CHECK_LIMIT:
            n_coords = _DEFAULT_SUBSET
        rows = _check(xp, _Perturbable(xp, value, eps), named, n_coords, seed, rtol, atol, dev)
        near = int(xp.count_nonzero(xp.abs(_kinked_inputs(m, Xd)) <= 100.0 * eps))
    m.params[...] = saved_params
    what = type(model).__name__ + (str(model.sizes) if hasattr(model, "sizes") else f" of {m.n_params} parameters")
    report = GradcheckReport(f"{what} (output {m.output}, loss {loss or 'default'}{f', l2={l2:g}' if l2 else ''})",
                             rows, eps, rtol, atol, model.backend.spec)
    if near:
        report.hints.append(f"{near} pre-activation(s) feeding ReLU/LeakyReLU lie within {100 * eps:g} of the "
                            f"kink at 0, where finite differences straddle it: a failure there can be spurious "
                            f"(try another batch)")
    failing = [r.name for r in rows[:-1] if not r.passed]
    if failing:
        layers = dict(walk(m.root))
        last = m.layout[failing[-1]].layer
        report.hints.append(f"failing: {', '.join(failing)}; gradients flow from the output down, so arrays below "
                            f"a faulty backward fail too: suspect layer {last} ({layers[last]!r}), the layers "
                            f"after it, or the output/loss ({m.output})")
    elif not report.passed:
        report.hints.append("only the directional derivative fails: some coordinate outside the checked "
                            "subset is wrong; raise n_coords")
    return report


# ---------------------------------------------------------------- single layers
def _working_copy(layer: Any, x: Array) -> Any:
    """A float64 copy of ``layer`` bound to fresh buffers on x's backend, holding the layer's values."""
    xp, dev = namespace(x), device(x)
    registered = LAYERS.get(type(layer).__name__) is type(layer)
    if registered:
        work = layer_from_config(layer.config())
    elif layer.ctx is None:
        work = layer  # an unbound custom layer: bound here, for the check
    else:
        raise ValueError(f"check_layer: {type(layer).__name__} is bound to a network and not in the layer "
                         f"registry: decorate the class with @xpnet.nn.register to check it")
    work.build(int(x.shape[1]))
    seed = layer.ctx.seed if layer.ctx is not None else 0
    bound = bind_tree(work, Context(xp, dev, xp.float64, seed))
    work.set_need_dx(True)
    if work is not layer and layer.ctx is not None:  # carry the values of a bound layer over
        originals = dict(walk(layer))
        for e in bound.layout:
            flat = bound.params if e.kind == "param" else bound.buffers
            flat[e.offset:e.stop] = xp.reshape(xp.astype(getattr(originals[e.layer], e.attr), xp.float64), (-1,))
        for path, sub in walk(work):
            if hasattr(sub, "counter"):
                sub.counter = originals[path].counter
    return work, bound


def check_layer(layer: Any, x: Any, *, training: bool = True, eps: float = 1e-6, rtol: float = 1e-6,
                atol: float = 1e-8, n_coords: int | None = None, seed: int = 0) -> GradcheckReport:
    """Check ``layer.backward`` against central differences of ``L = Σ forward(x)[0] ⊙ r``.

    ``layer``: any layer of the contract (``xpnet.nn``'s, a container, or your own class);
    ``x``: a (batch, features) device array (its namespace and device are used; it is checked
    in float64). dx and the gradients of every parameter inside the layer are checked. Dropout
    counters and buffers are put back before every forward, so the mask stays fixed.
    """
    xp, dev = namespace(x), device(x)
    _float64_ok(xp, dev)
    x64 = xp.astype(x, xp.float64)  # a copy: perturbed in place below
    work, bound = _working_copy(layer, x64)
    randoms = [(sub, sub.counter) for _, sub in walk(work) if hasattr(sub, "counter")]
    buffers0 = bound.buffers * 1.0

    def forward() -> tuple[Array, Any]:
        for sub, c in randoms:
            sub.counter = c
        bound.buffers[...] = buffers0
        return work.forward(x64, training)

    y0, _ = forward()
    r = xrandom.normal(xp, tuple(y0.shape), seed, _STREAM + 1, 0, dtype=xp.float64, device=dev)

    def value() -> Array:
        return xp.sum(forward()[0] * r)

    _, cache = forward()
    dx = work.backward(r, cache)
    grads = bound.grads * 1.0
    named = [(e.name, e.view(bound.params, xp), e.view(grads, xp)) for e in bound.layout.params]
    if dx is not None:
        if tuple(dx.shape) != tuple(x64.shape):
            raise ValueError(f"{type(layer).__name__}.backward returned dx of shape {tuple(dx.shape)} "
                             f"for x of shape {tuple(x64.shape)}")
        named.insert(0, ("dx", x64, dx))
    if not named:
        raise ValueError(f"{type(layer).__name__}.backward returned None and the layer has no parameters: "
                         f"nothing to check")
    rows = _check(xp, _Perturbable(xp, value, eps), named, n_coords, seed, rtol, atol, dev)
    report = GradcheckReport(f"{type(layer).__name__} on x{tuple(x64.shape)}{'' if training else ' (eval)'}",
                             rows, eps, rtol, atol, f"{xp.__name__.rsplit('.', 1)[-1]} {dev}")
    if dx is None:
        report.hints.append("backward returned None: dx not checked")
    bad = [r.name for r in report.failures if r.name != "directional derivative"]
    if bad:
        report.hints.append(f"{type(layer).__name__}.backward disagrees with finite differences for "
                            f"{', '.join(bad)}: re-derive it from forward (dL/dy = r is passed in)")
    return report
