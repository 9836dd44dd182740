"""Benchmark tasks: network shape, optimiser settings and data for each one.

Every peer trains the same network on the same arrays: float32 features,
integer labels, a fixed seeded 80/20 train/test split, features standardised
with the training-set mean and standard deviation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TASK_NAMES = ("small", "medium", "large", "xlarge")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    sizes: tuple[int, ...]
    batch_size: int
    epochs: int
    lr: float
    description: str
    n_samples: int
    gpu_only_default: bool = False  # CPU peers are left out unless named
    l2: float = 0.0

    @property
    def n_weights(self) -> int:
        """Weights only (no biases): the FLOP model is 6 x weights x samples."""
        return sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def n_params(self) -> int:
        return self.n_weights + sum(self.sizes[1:])

    @property
    def n_classes(self) -> int:
        return 2 if self.sizes[-1] == 1 else self.sizes[-1]


@dataclasses.dataclass
class Data:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])


TASKS = {
    "small": Task(
        "small", (2, 64, 32, 1), batch_size=32, epochs=200, lr=1e-3,
        description="make_moons(1000, noise=0.2)", n_samples=1000),
    "medium": Task(
        "medium", (64, 128, 64, 10), batch_size=64, epochs=50, lr=1e-3,
        description="load_digits (1797 samples), standardised", n_samples=1797),
    "large": Task(
        "large", (100, 512, 256, 10), batch_size=256, epochs=3, lr=1e-3,
        description="make_classification(200000, 100 features, 50 informative, 10 classes)",
        n_samples=200_000),
    "xlarge": Task(
        "xlarge", (1024, 4096, 4096, 10), batch_size=4096, epochs=3, lr=1e-3,
        description="synthetic Gaussian-cluster data, 400000 x 1024, 64 informative "
                    "directions, 10 classes (numpy)",
        n_samples=400_000, gpu_only_default=True),
}

# --tiny: a few hundred samples and 1-2 epochs, for smoke tests.
TINY_SAMPLES = {"small": 300, "medium": 400, "large": 400, "xlarge": 512}
TINY_EPOCHS = {"small": 2, "medium": 2, "large": 1, "xlarge": 1}


def get_task(name: str, *, tiny: bool = False, epochs: int | None = None,
             l2: float | None = None, lr: float | None = None) -> Task:
    task = TASKS[name]
    changes = {}
    if tiny:
        changes["n_samples"] = TINY_SAMPLES[name]
        changes["epochs"] = TINY_EPOCHS[name]
    if epochs is not None:
        changes["epochs"] = int(epochs)
    if l2 is not None:
        changes["l2"] = float(l2)
    if lr is not None:
        changes["lr"] = float(lr)
    return dataclasses.replace(task, **changes) if changes else task


# --------------------------------------------------------------------------- data

def _synthetic_classification(n, n_features, n_informative, n_classes, rng):
    """make_classification-like data built with numpy alone (used for xlarge).

    Each class has a few Gaussian clusters in an informative subspace; the
    informative coordinates are mixed into all features by a random linear map
    and isotropic noise is added.
    """
    clusters_per_class = 2
    centers = 0.3 * rng.standard_normal((n_classes * clusters_per_class, n_informative))
    y = rng.integers(0, n_classes, size=n)
    which = y * clusters_per_class + rng.integers(0, clusters_per_class, size=n)
    X = np.empty((n, n_features), dtype=np.float32)
    mix = rng.standard_normal((n_informative, n_features)).astype(np.float32)
    mix /= np.sqrt(n_informative)
    chunk = 50_000
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        z = centers[which[s:e]] + rng.standard_normal((e - s, n_informative))
        X[s:e] = z.astype(np.float32) @ mix
        X[s:e] += rng.standard_normal((e - s, n_features), dtype=np.float32)
    return X, y


def _raw_data(task: Task, seed: int):
    if task.name == "small":
        from sklearn.datasets import make_moons
        return make_moons(task.n_samples, noise=0.2, random_state=seed)
    if task.name == "medium":
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        if task.n_samples < len(y):
            idx = np.random.default_rng(seed).permutation(len(y))[:task.n_samples]
            X, y = X[idx], y[idx]
        return X, y
    if task.name == "large":
        from sklearn.datasets import make_classification
        return make_classification(
            n_samples=task.n_samples, n_features=task.sizes[0], n_informative=50,
            n_redundant=10, n_classes=task.sizes[-1], random_state=seed)
    if task.name == "xlarge":
        rng = np.random.default_rng(seed)
        return _synthetic_classification(task.n_samples, task.sizes[0], 64,
                                         task.sizes[-1], rng)
    raise ValueError(f"unknown task {task.name!r}")


def make_data(task: Task, seed: int = 0) -> Data:
    X, y = _raw_data(task, seed)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    perm = np.random.default_rng(seed + 12345).permutation(n)
    n_train = int(round(0.8 * n))
    tr, te = perm[:n_train], perm[n_train:]
    X_train, X_test = X[tr], X[te]
    mean = X_train.mean(axis=0, dtype=np.float64)
    std = X_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0  # load_digits has constant pixels
    mean, inv_std = mean.astype(np.float32), (1.0 / std).astype(np.float32)
    X_train = (X_train - mean) * inv_std
    X_test = (X_test - mean) * inv_std
    return Data(np.ascontiguousarray(X_train), y[tr].copy(),
                np.ascontiguousarray(X_test), y[te].copy())
