"""The peers the benchmark compares.  Each one trains the same network.

A peer has:
  name            row label in the report
  matmul_lib      which measured matmul rate its GFLOP/s is compared with
  device_memory   None, "torch-cuda" or "cupy": how its device memory peak is read
  check()         None if it can run here, else the reason it is skipped
  setup()         untimed, once: heavy imports, device/context creation
  fit(task, X, y) timed: build the model from scratch and train it; returns
                  the peer's own per-epoch mean training losses (or None)
  sync()          wait for queued device work (timed region ends after it)
  predict_proba(X) untimed: numpy probabilities, (n, 1) binary or (n, k)

Heavy libraries (torch, sklearn, xpnet) are imported inside the methods so a
missing one only makes its peer "skipped (not installed)".
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings

import numpy as np

from . import plain_numpy
from .measure import usable_cores

PREDICT_CHUNK = 16384


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _chunked(fn, X):
    return np.concatenate([fn(X[s:s + PREDICT_CHUNK])
                           for s in range(0, X.shape[0], PREDICT_CHUNK)], axis=0)


class Peer:
    name = "?"
    matmul_lib = "numpy"
    device_memory = None
    backend_desc = None

    def check(self):
        return None

    def setup(self):
        pass

    def sync(self):
        pass

    def fit(self, task, X, y):
        raise NotImplementedError

    def predict_proba(self, X):
        raise NotImplementedError

    def release(self):
        """Drop the trained model (called after evaluation)."""
        self.model = None


# ---------------------------------------------------------------- plain numpy

class PlainNumpyPeer(Peer):
    name = "plain-numpy"
    matmul_lib = "numpy"
    backend_desc = "numpy (tutorial-style, benchmarks/plain_numpy.py)"

    def fit(self, task, X, y):
        self.model = plain_numpy.PlainNumpyMLP(task.sizes, seed=0)
        return plain_numpy.train(self.model, X, y, lr=task.lr, epochs=task.epochs,
                                 batch_size=task.batch_size, l2=task.l2, seed=0)

    def predict_proba(self, X):
        return _chunked(self.model.predict_proba, X)


# ---------------------------------------------------------------- scikit-learn

class SklearnPeer(Peer):
    """MLPClassifier(solver="adam"); runs every epoch (tol=0, no early stop).

    Differences it cannot avoid: Glorot-uniform initialisation instead of He,
    and its L2 term is 0.5 * alpha * sum(W**2) / batch_size, so
    alpha = l2 * batch_size gives xpnet's l2 / 2 * sum(W**2) (exact except
    for a short last batch).
    """
    name = "sklearn"
    matmul_lib = "numpy"

    def check(self):
        return None if _installed("sklearn") else "not installed"

    def setup(self):
        import sklearn
        from sklearn.neural_network import MLPClassifier  # noqa: F401
        self.backend_desc = f"scikit-learn {sklearn.__version__} MLPClassifier(adam)"

    def fit(self, task, X, y):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        self.model = MLPClassifier(
            hidden_layer_sizes=tuple(task.sizes[1:-1]), activation="relu",
            solver="adam", alpha=task.l2 * task.batch_size,
            batch_size=task.batch_size, learning_rate_init=task.lr,
            max_iter=task.epochs, shuffle=True, random_state=0, tol=0.0,
            n_iter_no_change=10**9, early_stopping=False,
            beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=".*batch_size.*")
            self.model.fit(X, y)
        self.n_out = task.sizes[-1]
        return [float(v) for v in self.model.loss_curve_]

    def predict_proba(self, X):
        P = _chunked(self.model.predict_proba, X)
        if self.n_out == 1:
            return P[:, 1:2]
        full = np.zeros((X.shape[0], self.n_out), dtype=P.dtype)
        full[:, self.model.classes_] = P
        return full


# ---------------------------------------------------------------- PyTorch eager

class TorchPeer(Peer):
    """nn.Sequential + torch.optim.Adam, randperm shuffling every epoch."""

    def __init__(self, device: str):
        self.device = device
        self.name = f"torch-{device}"
        self.matmul_lib = f"torch-{device}"
        self.device_memory = "torch-cuda" if device == "cuda" else None

    def check(self):
        if not _installed("torch"):
            return "not installed"
        if self.device == "cuda":
            import torch
            if not torch.cuda.is_available():
                return "no CUDA device"
        return None

    def setup(self):
        import torch
        torch.set_num_threads(usable_cores())
        if self.device == "cuda":
            torch.zeros(1, device="cuda")
            torch.cuda.synchronize()
            self.backend_desc = (f"torch {torch.__version__} eager, "
                                 f"{torch.cuda.get_device_name(0)}")
        else:
            self.backend_desc = (f"torch {torch.__version__} eager, "
                                 f"{torch.get_num_threads()} threads")

    def sync(self):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()

    def fit(self, task, X, y):
        import torch
        from torch import nn

        dev = torch.device(self.device)
        torch.manual_seed(0)
        n_layers = len(task.sizes) - 1
        layers = []
        for i, (d_in, d_out) in enumerate(zip(task.sizes[:-1], task.sizes[1:])):
            lin = nn.Linear(d_in, d_out)
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < n_layers - 1:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers).to(dev)
        self.model, self.n_out = model, task.sizes[-1]

        Xt = torch.from_numpy(X).to(dev)
        if self.n_out == 1:
            yt = torch.from_numpy(y.astype(np.float32).reshape(-1, 1)).to(dev)
            loss_fn = nn.BCEWithLogitsLoss()
        else:
            yt = torch.from_numpy(y).to(dev)
            loss_fn = nn.CrossEntropyLoss()
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        # coupled weight decay == gradient of l2/2 * sum(W**2) on the weights
        opt = torch.optim.Adam([{"params": weights, "weight_decay": task.l2},
                                {"params": biases, "weight_decay": 0.0}], lr=task.lr)
        gen = torch.Generator(device=dev).manual_seed(0)
        n, bs = Xt.shape[0], task.batch_size
        history = []
        model.train()
        for _ in range(task.epochs):
            perm = torch.randperm(n, device=dev, generator=gen)
            total = torch.zeros((), device=dev)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                xb, yb = Xt[idx], yt[idx]
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.detach() * idx.shape[0]
            history.append(total.item() / n)
        return history

    def predict_proba(self, X):
        import torch
        model = self.model
        model.eval()
        dev = torch.device(self.device)

        def run(xc):
            with torch.no_grad():
                z = model(torch.from_numpy(xc).to(dev))
                p = torch.sigmoid(z) if self.n_out == 1 else torch.softmax(z, dim=1)
                return p.cpu().numpy()
        return _chunked(run, X)


# ---------------------------------------------------------------- xpnet

def _xpnet_matmul_lib(spec: str) -> str:
    if spec.startswith("torch:cuda"):
        return "torch-cuda"
    if spec.startswith("torch"):
        return "torch-cpu"
    if spec.startswith("cupy"):
        return "cupy"
    return "numpy"  # numpy, strict (array-api-strict wraps numpy)


def _xpnet_device_memory(spec: str):
    if spec.startswith("torch:cuda"):
        return "torch-cuda"
    if spec.startswith("cupy"):
        return "cupy"
    return None


class XpnetPeer(Peer):
    """xpnet.MLP + xpnet.fit through the public API, on one backend spec."""

    def __init__(self, spec: str):
        self.spec = spec
        self.name = f"xpnet:{spec}"
        self.matmul_lib = _xpnet_matmul_lib(spec)
        self.device_memory = _xpnet_device_memory(spec)
        self.backend = None

    def check(self):
        if not (_installed("xpnet") and _installed("backends")):
            return "not installed"
        import backends
        if self.spec not in backends.available():
            return "backend not available"
        return None

    def setup(self):
        import backends
        import xpnet  # noqa: F401
        if self.spec.startswith("torch"):
            import torch
            torch.set_num_threads(usable_cores())
        self.backend = backends.get(self.spec)
        try:
            self.backend_desc = str(self.backend.describe())
        except Exception:  # noqa: BLE001 - description is cosmetic
            self.backend_desc = self.spec

    def sync(self):
        self.backend.synchronize()

    def fit(self, task, X, y):
        import xpnet
        self.model = xpnet.MLP(list(task.sizes), activation="relu", init="he_normal",
                               seed=0, backend=self.backend, dtype="float32")
        extra = {}
        if "train_accuracy" in inspect.signature(xpnet.fit).parameters:
            extra["train_accuracy"] = False  # the other peers don't track it either
        hist = xpnet.fit(self.model, X, y, optimizer=xpnet.Adam(lr=task.lr),
                         l2=task.l2, epochs=task.epochs, batch_size=task.batch_size,
                         seed=0, **extra)
        losses = hist["loss"] if isinstance(hist, dict) else getattr(hist, "loss", None)
        return None if losses is None else [float(v) for v in losses]

    def predict_proba(self, X):
        model, be = self.model, self.model.backend

        def run(xc):
            p = model.forward(be.asarray(xc), training=False)
            return np.asarray(be.to_numpy(p))
        P = _chunked(run, X)
        be.synchronize()
        return P


# ---------------------------------------------------------------- registry

BASE_PEERS = ("plain-numpy", "sklearn", "torch-cpu", "torch-cuda")
# The GPU xpnet specs a report should mention even where they are missing.
KNOWN_GPU_SPECS = ("cupy", "torch:cuda")


def make_peer(name: str) -> Peer:
    if name in ("plain-numpy", "numpy-plain", "plain_numpy"):
        return PlainNumpyPeer()
    if name in ("sklearn", "scikit-learn"):
        return SklearnPeer()
    if name in ("torch-cpu", "torch"):
        return TorchPeer("cpu")
    if name == "torch-cuda":
        return TorchPeer("cuda")
    if name.startswith("xpnet:"):
        return XpnetPeer(name[len("xpnet:"):])
    raise ValueError(f"unknown peer {name!r}; known: xpnet, xpnet:<backend spec>, "
                     + ", ".join(BASE_PEERS))


def xpnet_backend_specs(requested: list[str] | None, include_strict: bool = False):
    """(specs to run, {spec: skip reason}) for the xpnet peer.

    Default: every available backend except the strict conformance ones
    (``include_strict`` keeps them).
    """
    if not (_installed("xpnet") and _installed("backends")):
        return [], {"xpnet": "not installed"}
    import backends
    available = list(backends.available())
    if include_strict:
        return available, {}
    if requested:
        run = [s for s in requested if s in available]
        skipped = {s: _unavailable_reason(backends, s) for s in requested
                   if s not in available}
        return run, skipped
    run = [s for s in available if not s.startswith("strict")]
    skipped = {s: _unavailable_reason(backends, s) for s in KNOWN_GPU_SPECS
               if s not in available}
    return run, skipped


def _unavailable_reason(backends, spec: str) -> str:
    try:
        backends.get(spec)
    except Exception as exc:  # noqa: BLE001 - the reason is all we want
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = msg.split("is not available: ", 1)[-1]
        if "not installed" in msg or isinstance(exc, ImportError):
            return "not installed"
        return "not available: " + (msg if len(msg) < 120 else msg[:117] + "...")
    return "backend not available"
