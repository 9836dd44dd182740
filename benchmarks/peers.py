"""The peers the benchmark compares.  Each one trains the same network.

A peer has:
  name            row label in the report
  matmul_lib      which measured matmul rate its GFLOP/s is compared with
  device_memory   None, "torch-cuda" or "cupy": how its device memory peak is read
  check()         None if it can run here, else the reason it is skipped
  setup()         untimed, once: heavy imports, device/context creation
  prepare(task, data) untimed, after the warm-up: anything else that depends on
                  the task's exact array shapes (jax.jit compiles per shape)
  fit(task, X, y) timed: build the model from scratch and train it; returns
                  the peer's own per-epoch mean training losses (or None)
  sync()          wait for queued device work (timed region ends after it)
  predict_proba(X) untimed: numpy probabilities, (n, 1) binary or (n, k)

Heavy libraries (torch, sklearn, thinc, jax, xpnet) are imported inside the
methods so a missing one only makes its peer "skipped (not installed)".

The strong peers are written the way their best users write them: torch-tuned-*
(Adam with foreach=True on CPU, fused=True on CUDA, no per-step synchronisation),
torch-compile-* (the same, with the model compiled by torch.compile once per task,
mode "reduce-overhead" on CUDA), thinc-* (NumpyOps / CupyOps) and jax-* (one
jit-compiled training step, parameters and Adam state donated). Compiling peers
compile in the untimed warm-up, which sees the same batch shapes as the timed runs.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
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

    def prepare(self, task, data):
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


# ---------------------------------------------------------------- PyTorch

def _torch_mlp(torch, sizes):
    """nn.Sequential of Linear + ReLU, He-normal weights, zero biases (torch's global seed 0)."""
    from torch import nn
    torch.manual_seed(0)
    layers = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    _torch_reinit(torch, model)
    return model


def _torch_reinit(torch, model):
    """He-normal weights and zero biases in place, from torch's global seed 0."""
    from torch import nn
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)


class TorchPeer(Peer):
    """nn.Sequential + torch.optim.Adam, randperm shuffling every epoch, no per-step sync.

    variant "eager": torch.optim.Adam with its defaults (the typical tutorial code);
    "tuned": Adam(foreach=True) on CPU, Adam(fused=True) on CUDA;
    "compile": "tuned" with the model compiled by torch.compile (default mode on CPU,
    "reduce-overhead", i.e. CUDA graphs, on CUDA). The compiled model is built once per
    network shape and re-initialised in place for each run, as one reuses a compiled model.
    """

    def __init__(self, device: str, variant: str = "eager"):
        self.device, self.variant = device, variant
        self.name = f"torch-{device}" if variant == "eager" else f"torch-{variant}-{device}"
        self.matmul_lib = f"torch-{device}"
        self.device_memory = "torch-cuda" if device == "cuda" else None
        self._compiled = {}

    def check(self):
        if not _installed("torch"):
            return "not installed"
        import torch
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device"
        if self.variant == "compile":
            return _torch_compile_problem(torch, self.device)
        return None

    def setup(self):
        import torch
        torch.set_num_threads(usable_cores())
        what = {"eager": "eager", "tuned": "eager, Adam(foreach)" if self.device == "cpu"
                else "eager, Adam(fused)", "compile": "torch.compile"}[self.variant]
        if self.device == "cuda":
            torch.zeros(1, device="cuda")
            torch.cuda.synchronize()
            self.backend_desc = (f"torch {torch.__version__} {what}, "
                                 f"{torch.cuda.get_device_name(0)}")
        else:
            self.backend_desc = (f"torch {torch.__version__} {what}, "
                                 f"{torch.get_num_threads()} threads")

    def sync(self):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()

    def _model(self, torch, sizes):
        """(module to train, module for inference) for this run."""
        dev = torch.device(self.device)
        if self.variant != "compile":
            model = _torch_mlp(torch, sizes).to(dev)
            return model, model
        if sizes not in self._compiled:
            model = _torch_mlp(torch, sizes).to(dev)
            mode = "reduce-overhead" if self.device == "cuda" else None
            self._compiled[sizes] = (torch.compile(model, mode=mode, dynamic=False), model)
        else:
            _torch_reinit(torch, self._compiled[sizes][1])
        return self._compiled[sizes]

    def fit(self, task, X, y):
        import torch
        from torch import nn

        dev = torch.device(self.device)
        train_model, self.model = self._model(torch, tuple(task.sizes))
        self.n_out = task.sizes[-1]

        Xt = torch.from_numpy(X).to(dev)
        if self.n_out == 1:
            yt = torch.from_numpy(y.astype(np.float32).reshape(-1, 1)).to(dev)
            loss_fn = nn.BCEWithLogitsLoss()
        else:
            yt = torch.from_numpy(y).to(dev)
            loss_fn = nn.CrossEntropyLoss()
        params = dict(self.model.named_parameters())
        weights = [p for name, p in params.items() if name.endswith("weight")]
        biases = [p for name, p in params.items() if name.endswith("bias")]
        # coupled weight decay == gradient of l2/2 * sum(W**2) on the weights
        groups = [{"params": weights, "weight_decay": task.l2},
                  {"params": biases, "weight_decay": 0.0}]
        if self.variant == "eager":
            opt = torch.optim.Adam(groups, lr=task.lr)
        elif self.device == "cuda":
            opt = torch.optim.Adam(groups, lr=task.lr, fused=True)
        else:
            opt = torch.optim.Adam(groups, lr=task.lr, foreach=True)
        graphs = self.variant == "compile" and self.device == "cuda"
        gen = torch.Generator(device=dev).manual_seed(0)
        n, bs = Xt.shape[0], task.batch_size
        history = []
        train_model.train()
        for _ in range(task.epochs):
            perm = torch.randperm(n, device=dev, generator=gen)
            total = torch.zeros((), device=dev)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                xb, yb = Xt[idx], yt[idx]
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                loss = loss_fn(train_model(xb), yb)
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


def _torch_compile_problem(torch, device: str):
    """None if torch.compile can train a tiny model here, else why not (one line)."""
    try:
        model = torch.nn.Linear(3, 1).to(device)
        compiled = torch.compile(model, mode="reduce-overhead" if device == "cuda" else None,
                                 dynamic=False)
        compiled(torch.ones(2, 3, device=device)).sum().backward()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot run here"
        msg = (str(exc).strip().splitlines() or [""])[0][:160]
        return f"torch.compile failed: {type(exc).__name__}: {msg}"
    return None


# ---------------------------------------------------------------- Thinc

class ThincPeer(Peer):
    """thinc chain(Relu, ..., Softmax) with He-normal init, thinc's Adam (no clipping, no averages).

    NumpyOps on CPU, CupyOps on CUDA. One output unit: a Linear output layer with the
    sigmoid and binary cross-entropy gradient (p - y)/n computed on the logits, as
    BCE-with-logits does; several: Softmax + CategoricalCrossentropy. L2 is added to
    the weight gradients (not the biases), like the other peers.
    """

    def __init__(self, device: str):
        self.device = device
        self.name = f"thinc-{device}"
        self.matmul_lib = "numpy" if device == "cpu" else "cupy"
        self.device_memory = "cupy" if device == "cuda" else None

    def check(self):
        if not _installed("thinc"):
            return "not installed"
        if self.device == "cuda":
            if not _installed("cupy"):
                return "CuPy not installed"
            import cupy
            try:
                if cupy.cuda.runtime.getDeviceCount() < 1:
                    return "no CUDA device"
            except Exception:  # noqa: BLE001 - no driver, no device
                return "no CUDA device"
        return None

    def setup(self):
        import thinc
        from thinc.api import CupyOps, NumpyOps
        self.ops = NumpyOps() if self.device == "cpu" else CupyOps()
        self.backend_desc = f"thinc {thinc.__version__} {type(self.ops).__name__}"

    def sync(self):
        if self.device == "cuda":
            import cupy
            cupy.cuda.Stream.null.synchronize()

    def fit(self, task, X, y):
        from thinc.api import Adam, Linear, Relu, Softmax, chain, fix_random_seed, use_ops
        from thinc.initializers import he_normal_init, zero_init

        ops, xp = self.ops, self.ops.xp
        sizes, self.n_out = task.sizes, task.sizes[-1]
        init = {"init_W": he_normal_init, "init_b": zero_init}
        with use_ops(type(self.ops).name):
            hidden = [Relu(nO=o, nI=i, **init) for i, o in zip(sizes[:-2], sizes[1:-1])]
            out = (Linear if self.n_out == 1 else Softmax)(nO=sizes[-1], nI=sizes[-2], **init)
            model = chain(*hidden, out)
        fix_random_seed(0)
        model.initialize()
        self.model = model
        opt = Adam(task.lr, beta1=0.9, beta2=0.999, eps=1e-8, L2=0.0, grad_clip=0.0,
                   use_averages=False)
        layers = [node for node in model.walk() if node.has_param("W")]

        Xd = ops.asarray2f(X)
        targets = (ops.asarray2f(y.astype(np.float32).reshape(-1, 1)) if self.n_out == 1
                   else ops.asarray2f(np.eye(self.n_out, dtype=np.float32)[y]))
        rng = np.random.default_rng(0)
        n, bs = X.shape[0], task.batch_size
        history = []
        for _ in range(task.epochs):
            perm = ops.asarray1i(rng.permutation(n).astype(np.int32))
            total = xp.zeros((), dtype=xp.float32)
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                xb, tb = Xd[idx], targets[idx]
                out, backprop = model.begin_update(xb)
                if self.n_out == 1:  # logits z: p = sigmoid(z), dL/dz = (p - y)/n
                    p = 1.0 / (1.0 + xp.exp(-out))
                    loss = xp.logaddexp(0.0, out) - out * tb  # BCE with logits
                    d = (p - tb) / xb.shape[0]
                else:
                    loss = -xp.log(xp.maximum((out * tb).sum(axis=1), 1e-7))
                    d = (out - tb) / xb.shape[0]
                backprop(d)
                if task.l2:
                    for node in layers:
                        node.inc_grad("W", task.l2 * node.get_param("W"))
                model.finish_update(opt)
                total += loss.sum()
            history.append(float(total) / n)
        return history

    def predict_proba(self, X):
        ops = self.ops

        def run(xc):
            z = self.model.predict(ops.asarray2f(xc))
            if self.n_out == 1:
                z = 1.0 / (1.0 + ops.xp.exp(-z))
            return ops.to_numpy(z)
        return _chunked(run, X)


# ---------------------------------------------------------------- JAX

class JaxPeer(Peer):
    """A jax.jit-compiled training step (forward, jax.grad backward, Adam) on device arrays.

    Parameters and Adam state are donated to the step; the batch is gathered inside it
    from the device-resident data and the epoch's permutation; the epoch loss is summed on
    the device (one transfer per epoch). The step is compiled once per network and array
    shapes, in prepare() (untimed).
    """

    def __init__(self, device: str):
        self.device = device
        self.name = f"jax-{device}"
        self.matmul_lib = "numpy" if device == "cpu" else "torch-cuda"
        self.device_memory = None
        self._steps = {}

    def check(self):
        if not _installed("jax"):
            return "not installed"
        import jax
        try:
            jax.devices("gpu" if self.device == "cuda" else "cpu")
        except RuntimeError:
            return "no CUDA device for JAX" if self.device == "cuda" else "no CPU device for JAX"
        return None

    def setup(self):
        import jax
        self.dev = jax.devices("gpu" if self.device == "cuda" else "cpu")[0]
        self.backend_desc = f"jax {jax.__version__} jit, {self.dev.platform}"

    def sync(self):
        import jax
        jax.block_until_ready(getattr(self, "params", None))

    def _step(self, task):
        key = (tuple(task.sizes), task.lr, task.l2)
        if key not in self._steps:
            self._steps[key] = _jax_train_step(task.sizes[-1], task.lr, task.l2)
        return self._steps[key]

    def prepare(self, task, data):
        """Run the training code on the whole data, two epochs of a few batches: every shape
        and argument provenance (fresh or a previous step's output) of fit's steps compiles."""
        n, bs = data.n_train, task.batch_size
        self._train(task, data.X_train, data.y_train, epochs=2, starts=[0, 0, n - (n % bs or bs)])
        self.release()

    def fit(self, task, X, y):
        return self._train(task, X, y, task.epochs, range(0, X.shape[0], task.batch_size))

    def _train(self, task, X, y, epochs, starts):
        import jax
        import jax.numpy as jnp

        step = self._step(task)
        self.n_out = task.sizes[-1]
        rng = np.random.default_rng(0)
        params = [(rng.standard_normal((i, o)).astype(np.float32) * np.float32(np.sqrt(2.0 / i)),
                   np.zeros(o, np.float32)) for i, o in zip(task.sizes[:-1], task.sizes[1:])]
        params = jax.device_put(params, self.dev)
        state = tuple(jax.tree_util.tree_map(jnp.zeros_like, params) for _ in "mv") + (
            jnp.zeros((), jnp.float32),)
        Xd = jax.device_put(X, self.dev)
        yd = jax.device_put(y.astype(np.float32).reshape(-1, 1) if self.n_out == 1
                            else y.astype(np.int32), self.dev)
        key = jax.device_put(jax.random.PRNGKey(0), self.dev)
        n, bs = X.shape[0], task.batch_size
        history = []
        for _ in range(epochs):
            key, sub = jax.random.split(key)
            perm = jax.random.permutation(sub, n)
            total = jnp.zeros((), jnp.float32)
            for start in starts:
                params, state, total = step(params, state, total, Xd, yd, perm, start,
                                            size=min(bs, n - start))
            history.append(float(total) / n)
        self.params = params
        return history

    def predict_proba(self, X):
        import jax

        def run(xc):
            z = _jax_forward(self.params, jax.device_put(xc, self.dev))
            p = jax.nn.sigmoid(z) if self.n_out == 1 else jax.nn.softmax(z, axis=1)
            return np.asarray(p)
        return _chunked(run, X)

    def release(self):
        self.params = None


def _jax_forward(params, x):
    import jax
    for W, b in params[:-1]:
        x = jax.nn.relu(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def _jax_train_step(n_out: int, lr: float, l2: float):
    """step(params, state, total, X, y, perm, start, size) -> (params, state, total + batch loss sum)."""
    import functools

    import jax
    import jax.numpy as jnp
    from jax import lax

    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_fn(params, xb, yb):
        z = _jax_forward(params, xb)
        if n_out == 1:  # binary cross-entropy from logits
            per = jnp.logaddexp(0.0, z) - z * yb
        else:
            per = -jnp.take_along_axis(jax.nn.log_softmax(z), yb[:, None], axis=1)
        total = per.sum()
        reg = 0.5 * l2 * sum(jnp.sum(W * W) for W, _ in params) if l2 else 0.0
        return total / xb.shape[0] + reg, total

    @functools.partial(jax.jit, static_argnames=("size",), donate_argnums=(0, 1, 2))
    def step(params, state, total, X, y, perm, start, *, size):
        idx = lax.dynamic_slice(perm, (start,), (size,))
        (_, batch_total), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, X[idx], y[idx])
        m, v, t = state
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step_size = lr / (1 - b1 ** t)
        root = jnp.sqrt(1 - b2 ** t)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / root + eps), params, m, v)
        return params, (m, v, t), total + batch_total

    return step


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
    """xpnet.MLP + xpnet.fit through the public API, on one backend spec. On a GPU backend the steps
    replay from CUDA graphs; ``graphs=False`` (the peer ``xpnet-eager:<spec>``) launches them from
    Python (XPNET_CUDA_GRAPHS=0), for the side-by-side ratio."""

    def __init__(self, spec: str, graphs: bool = True):
        self.spec, self.graphs = spec, graphs
        self.name = f"xpnet:{spec}" if graphs else f"xpnet-eager:{spec}"
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
        saved = os.environ.get("XPNET_CUDA_GRAPHS")
        os.environ["XPNET_CUDA_GRAPHS"] = "1" if self.graphs else "0"
        try:
            hist = xpnet.fit(self.model, X, y, optimizer=xpnet.Adam(lr=task.lr),
                             l2=task.l2, epochs=task.epochs, batch_size=task.batch_size,
                             seed=0, **extra)
        finally:
            if saved is None:
                os.environ.pop("XPNET_CUDA_GRAPHS", None)
            else:
                os.environ["XPNET_CUDA_GRAPHS"] = saved
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

BASE_PEERS = ("plain-numpy", "sklearn", "torch-cpu", "torch-tuned-cpu", "torch-compile-cpu",
              "thinc-cpu", "jax-cpu", "torch-cuda", "torch-tuned-cuda", "torch-compile-cuda",
              "thinc-cuda", "jax-cuda")
# --peers shorthands
PEER_GROUPS = {"torch": tuple(p for p in BASE_PEERS if p.startswith("torch-")),
               "thinc": ("thinc-cpu", "thinc-cuda"), "jax": ("jax-cpu", "jax-cuda")}
# The GPU xpnet specs a report should mention even where they are missing.
KNOWN_GPU_SPECS = ("cupy", "torch:cuda")


def make_peer(name: str) -> Peer:
    if name in ("plain-numpy", "numpy-plain", "plain_numpy"):
        return PlainNumpyPeer()
    if name in ("sklearn", "scikit-learn"):
        return SklearnPeer()
    if name == "torch-cpu":
        return TorchPeer("cpu")
    if name == "torch-cuda":
        return TorchPeer("cuda")
    for variant in ("tuned", "compile"):
        for device in ("cpu", "cuda"):
            if name == f"torch-{variant}-{device}":
                return TorchPeer(device, variant)
    for device in ("cpu", "cuda"):
        if name == f"thinc-{device}":
            return ThincPeer(device)
        if name == f"jax-{device}":
            return JaxPeer(device)
    if name.startswith("xpnet:"):
        return XpnetPeer(name[len("xpnet:"):])
    if name.startswith("xpnet-eager:"):
        return XpnetPeer(name[len("xpnet-eager:"):], graphs=False)
    raise ValueError(f"unknown peer {name!r}; known: xpnet, xpnet:<backend spec>, xpnet-eager:<GPU spec>, "
                     + ", ".join(BASE_PEERS + tuple(PEER_GROUPS)))


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
