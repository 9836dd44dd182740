"""Whole composable networks against torch.autograd (float64, every backend).

Each network of ``NETS`` mixes Dense, BatchNorm1d (training mode), Residual (identity, projection
and explicit shortcuts), Dropout with p > 0 and every activation, under each output head and loss
(sigmoid + bce, softmax + cross-entropy, identity + mse, and the unfused softmax + mse). The same
network is evaluated in torch by walking xpnet's layer tree: the parameters are read from
``network.named_params()`` (by layout name), the dropout masks are xpnet's own
(``layer.mask(shape, dtype, counter)`` with the counter before the forward) and BatchNorm1d is
``torch.nn.functional.batch_norm(training=True)``. Loss and every parameter gradient must agree
to 1e-10 relative, the running statistics too; and a few ``xpnet.fit`` SGD steps must follow a
torch training loop (parameters, step losses, BatchNorm running statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import to_numpy
from xpnet import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-10
N_FEATURES = 6


# ============================================================== the networks
@dataclass(frozen=True)
class Net:
    id: str
    layers: Callable[[], list]
    output: str
    loss: str
    targets: str  # "binary", "classes" (integer labels) or "values"
    l2: float = 0.0


NETS = [
    Net("sigmoid-bce", lambda: [
        nn.Dense(N_FEATURES, 10, "relu"), nn.BatchNorm1d(10), nn.Dropout(0.3),
        nn.Residual([nn.Dense(10, 10, "tanh"), nn.BatchNorm1d(10), nn.Dense(10, 10, "gelu")]),
        nn.Dropout(0.2), nn.Dense(10, 1)], "sigmoid", "bce", "binary"),
    Net("softmax-cross_entropy", lambda: [
        nn.Dense(N_FEATURES, 12, "leaky_relu"), nn.Dropout(0.25),
        nn.Residual([nn.Dense(12, 8, "sigmoid"), nn.BatchNorm1d(8)]),  # projection shortcut
        nn.Dense(8, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Dense(8, 4, "softmax")],
        "softmax", "cross_entropy", "classes", l2=1e-2),
    Net("identity-mse", lambda: [
        nn.Dense(N_FEATURES, 8, "gelu"),
        nn.Residual(nn.Sequential([nn.Dense(8, 8, "identity"), nn.Tanh(), nn.Dropout(0.1)]),
                    shortcut=[nn.Dense(8, 8), nn.LeakyReLU(0.2)]),
        nn.BatchNorm1d(8), nn.Dense(8, 2)], "identity", "mse", "values", l2=1e-3),
    Net("softmax-mse-unfused", lambda: [
        nn.Dense(N_FEATURES, 10, "tanh"), nn.BatchNorm1d(10), nn.Dropout(0.2),
        nn.Residual([nn.Dense(10, 10, "sigmoid"), nn.Sigmoid(), nn.Dense(10, 10, "relu")]),
        nn.Dense(10, 3)], "softmax", "mse", "classes"),
]


def data(net: Net, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    if net.targets == "binary":
        return X, (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    if net.targets == "classes":
        k = 4 if net.output == "softmax" and net.loss == "cross_entropy" else 3
        return X, (np.abs(X[:, 0] * 2 + X[:, 1]).astype(np.int64) % k)
    return X, np.stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]], axis=1)


def build(net: Net, backend: Backend, seed: int = 1) -> Any:
    """The xpnet network with random values everywhere (biases, gammas, betas included)."""
    network = xpnet.Network(net.layers(), output=net.output, seed=seed, backend=backend, dtype="float64")
    rng = np.random.default_rng(seed)
    values = rng.normal(scale=0.5, size=network.n_params)
    network.params[...] = backend.asarray(values, dtype="float64")
    for e in network.layout.params:
        if e.attr == "gamma":  # keep the scales away from 0
            network.params[e.offset:e.stop] = backend.asarray(1.0 + values[e.offset:e.stop] * 0.5, dtype="float64")
    return network


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _activation(name: str, x: Any, alpha: float = 0.01) -> Any:
    if name == "relu":
        return F.relu(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, alpha)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "gelu":
        return F.gelu(x, approximate="tanh")
    if name == "softmax":
        return torch.softmax(x, dim=1)
    assert name in ("identity", None), name
    return x


class TorchTwin:
    """xpnet's layer tree evaluated in torch: leaf tensors of the same values (by layout name), the
    same dropout masks (from xpnet's counters), torch's batch_norm in training mode."""

    def __init__(self, network: Any):
        self.network = network
        self.params = {name: torch.tensor(to_numpy(value), dtype=torch.float64, requires_grad=True)
                       for name, value, _ in network.named_params()}
        self.buffers = {e.name: torch.tensor(to_numpy(e.view(network.buffers, network.xp)), dtype=torch.float64)
                        for e in network.layout.buffers}
        # the dropout counters now, before xpnet's forward advances them
        self.counters = {id(layer): layer.counter for layer in network.dropout_layers}
        self.masks: list[np.ndarray] = []

    def forward(self, X: np.ndarray) -> Any:
        """Logits of one training forward; each Dropout uses xpnet's mask for its current counter, which
        then advances (as xpnet's forward advances it)."""
        self.masks = []
        return self._run(self.network.root, "", torch.from_numpy(X))

    def _run(self, layer: Any, path: str, x: Any) -> Any:
        def p(name: str) -> Any:
            return self.params[_join(path, name)]

        if isinstance(layer, nn.Sequential):
            for i, child in enumerate(layer.layers):
                x = self._run(child, _join(path, str(i)), x)
            return x
        if isinstance(layer, nn.Residual):
            y = self._run(layer.body, _join(path, "body"), x)
            return y + (x if layer.shortcut is None else self._run(layer.shortcut, _join(path, "shortcut"), x))
        if isinstance(layer, nn.Dense):
            z = x @ p("W") + p("b")
            return z if layer.head else _activation(layer.activation, z)
        if isinstance(layer, nn.BatchNorm1d):
            return F.batch_norm(x, self.buffers[_join(path, "running_mean")], self.buffers[_join(path, "running_var")],
                                p("gamma"), p("beta"), training=True, momentum=layer.momentum, eps=layer.eps)
        if isinstance(layer, nn.Dropout):
            c = self.counters[id(layer)]
            mask = np.array(to_numpy(layer.mask(tuple(x.shape), self.network.dtype, c)), dtype=np.float64)
            self.counters[id(layer)] = c + 1
            self.masks.append(mask)
            return x * torch.from_numpy(mask)
        if isinstance(layer, nn.Activation):
            return _activation(layer.name, x, getattr(layer, "alpha", 0.01))
        raise AssertionError(f"no torch twin for {layer!r}")

    def loss(self, net: Net, z: Any, y: np.ndarray, l2: float) -> Any:
        if net.loss == "bce":
            value = F.binary_cross_entropy_with_logits(z, torch.from_numpy(y.reshape(-1, 1).astype(np.float64)))
        elif net.loss == "cross_entropy":
            value = F.cross_entropy(z, torch.from_numpy(y))
        elif net.output == "softmax":  # mse on the softmax outputs, one-hot targets
            value = F.mse_loss(torch.softmax(z, dim=1), F.one_hot(torch.from_numpy(y), z.shape[1]).double())
        else:
            value = F.mse_loss(z, torch.from_numpy(y))
        if l2:
            value = value + 0.5 * l2 * sum((self.params[e.name] ** 2).sum()
                                           for e in self.network.layout.params if e.decay)
        return value


def _assert_rel(name: str, actual: Any, desired: np.ndarray, rtol: float = RTOL) -> None:
    a, d = np.asarray(to_numpy(actual), dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert a.shape == d.shape, f"{name}: shape {a.shape} vs torch's {d.shape}"
    scale = float(np.max(np.abs(d)))
    assert scale > 0, f"{name}: torch's value vanishes; the comparison would be vacuous"
    np.testing.assert_allclose(a, d, rtol=rtol, atol=rtol * scale, err_msg=name)


# ============================================================== loss and gradients
@pytest.mark.parametrize("net", NETS, ids=lambda n: n.id)
def test_loss_and_gradients_match_torch(net: Net, backend: Backend) -> None:
    network = build(net, backend)
    X, y = data(net, 24)
    twin = TorchTwin(network)  # reads the values and the dropout counters before xpnet's forward
    value, _, _ = network.loss_and_grads(X, y, loss=net.loss, l2=net.l2)
    assert network.output == net.output

    t_value = twin.loss(net, twin.forward(X), y, net.l2)
    t_value.backward()
    _assert_rel("loss", value, t_value.detach().numpy())
    names = [name for name, _, _ in network.named_params()]
    assert names == list(twin.params) and len(names) == len(network.layout.params)
    for name, _, grad in network.named_params():
        _assert_rel(f"d loss / d {name}", grad, twin.params[name].grad.numpy())
    for e in network.layout.buffers:  # one training forward moved the running statistics alike
        _assert_rel(e.name, e.view(network.buffers, network.xp), twin.buffers[e.name].numpy())
    # what was compared is not trivial: dropout dropped units, every network has BN and a Residual
    assert twin.masks and all(np.any(m == 0) and np.any(m > 1) for m in twin.masks)
    kinds = {type(layer) for _, layer in nn.walk(network.root)}
    assert {nn.BatchNorm1d, nn.Residual, nn.Dropout} <= kinds
    assert network.counters == [1] * len(network.dropout_layers)


def test_networks_cover_every_activation_and_head() -> None:
    acts, pairs = set(), set()
    for net in NETS:
        pairs.add((net.output, net.loss))
        for _, layer in nn.walk(nn.Sequential(net.layers())):
            if isinstance(layer, nn.Dense) and layer.activation not in ("softmax", None):
                acts.add(layer.activation)
            elif isinstance(layer, nn.Activation):
                acts.add(layer.name)
            elif isinstance(layer, nn.Dense):
                acts.add("identity")
    assert acts >= {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity"}
    assert pairs >= {("sigmoid", "bce"), ("softmax", "cross_entropy"), ("identity", "mse"), ("softmax", "mse")}


# ============================================================== training: xpnet.fit vs a torch loop
@pytest.mark.parametrize("net", NETS[:2] + NETS[2:3], ids=lambda n: n.id)
def test_sgd_training_and_running_stats_match_torch(net: Net, backend: Backend) -> None:
    """xpnet.fit (SGD, no shuffling, L2 where the net has it) against the same steps in torch:
    step losses, final parameters and the BatchNorm running statistics after 12 steps."""
    n, batch, epochs, lr = 48, 16, 4, 0.05
    network = build(net, backend)
    X, y = data(net, n, seed=2)
    twin = TorchTwin(network)
    start = np.array(to_numpy(network.params), copy=True)
    history = xpnet.fit(network, X, y, optimizer=xpnet.SGD(lr=lr), loss=net.loss, l2=net.l2, epochs=epochs,
                        batch_size=batch, shuffle=False, train_accuracy=False)
    opt = torch.optim.SGD(list(twin.params.values()), lr=lr)
    losses = []
    for _ in range(epochs):
        for i in range(0, n, batch):
            opt.zero_grad()
            loss = twin.loss(net, twin.forward(X[i:i + batch]), y[i:i + batch], net.l2)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    steps = epochs * n // batch
    assert len(history["step_loss"]) == steps and network.counters == [steps] * len(network.dropout_layers)
    np.testing.assert_allclose(history["step_loss"], losses, rtol=1e-9)
    moved = np.asarray(to_numpy(network.params)) - start
    assert np.linalg.norm(moved) > 0.05 * np.linalg.norm(start)  # the steps were not negligible
    for name, value, _ in network.named_params():
        _assert_rel(name, value, twin.params[name].detach().numpy(), rtol=1e-9)
    assert network.layout.buffers
    for e in network.layout.buffers:
        _assert_rel(e.name, e.view(network.buffers, network.xp), twin.buffers[e.name].numpy(), rtol=1e-9)
