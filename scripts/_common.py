"""Shared pieces of scripts/train.py and scripts/parity.py (not part of the library).

Argument parsing and validation, data loading (scikit-learn datasets, CSV and NPZ files),
splitting and standardization, model / optimizer / schedule construction from the flags,
atomic output writing, metrics, plots, and the saved-model format with
:func:`load_run_model`. Every user error is a :class:`CLIError` (or an error the
library raises as ``ValueError`` / ``backends.BackendUnavailable``); :func:`run_cli`
turns them into one ``error: ...`` line on stderr and exit status 2.

Saved model (``model.npz`` + ``model.json`` in a run directory):
``model.npz`` holds ``W0, W1, ..., b0, b1, ...`` and ``dropout_counters`` (plain NumPy
arrays, loadable with ``allow_pickle=False``); ``model.json`` holds the MLP config,
the task, the class labels, the input standardization (mean/std of the training
split) and, for regression, the target standardization.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import backends  # noqa: E402
import xpnet  # noqa: E402
from xpnet import layers as _layers  # noqa: E402
from xpnet import losses as _losses  # noqa: E402
from xpnet import optim as _optim  # noqa: E402

MODEL_FORMAT = "xpnet-run-model/1"
GENERATED = ("moons", "circles", "xor", "classification")
BUNDLED = ("digits", "breast_cancer", "iris", "wine")
DATASETS = GENERATED + BUNDLED
TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 50  # integer targets with more distinct values than this are auto-detected as regression
DEFAULT_LR = {"sgd": 1e-2, "momentum": 1e-2, "nesterov": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
_MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}


class CLIError(Exception):
    """A user error: printed as one ``error: ...`` line, exit status 2."""


# ---------------------------------------------------------------- arguments
class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``error: ...`` line (exit 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def positive_int(text: str) -> int:
    v = _number(text, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    v = _number(text, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = _number(text, float)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def non_negative_float(text: str) -> float:
    v = _number(text, float)
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return v


def fraction(text: str) -> float:
    v = _number(text, float)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction strictly between 0 and 1, got {text!r}")
    return v


def dropout_rate(text: str) -> float:
    v = _number(text, float)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a rate in [0, 1), got {text!r}")
    return v


def hidden_sizes(text: str) -> list[int]:
    """``"64,32"`` -> [64, 32]; ``""`` or ``"none"`` -> [] (no hidden layer)."""
    if text.strip().lower() in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdecimal() or int(part) < 1:
            raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers separated by commas "
                                             f"(e.g. 64,32), got {text!r}")
        sizes.append(int(part))
    return sizes


def explicit_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict:
    """The flags given on the command line (dest -> parsed value); defaults are left out."""
    defaults = [(a, a.default) for a in parser._actions]
    try:
        for a, _ in defaults:
            a.default = argparse.SUPPRESS
        return vars(parser.parse_args(argv))
    finally:
        for a, d in defaults:
            a.default = d


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="moons", metavar="NAME|PATH",
                   help=f"one of {', '.join(DATASETS)} (scikit-learn generators and bundled datasets, nothing "
                        "is downloaded), or a path to a .csv file (header row, numeric feature columns) or "
                        ".npz file (arrays X and y, or one 1-D array per column). Default: moons")
    g.add_argument("--target", metavar="COLUMN",
                   help="target column of a CSV file (required for CSV) or array name in an NPZ file "
                        "(default there: y); every other column is a feature")
    g.add_argument("--task", default="auto", choices=("auto",) + TASKS,
                   help="auto (default): text labels or integers with at most "
                        f"{MAX_CLASSES} distinct values are classification (binary for two classes), "
                        "anything else is regression")
    g.add_argument("--samples", type=positive_int, metavar="N",
                   help="number of samples of a generated dataset (moons, circles, xor, classification; "
                        "default 1000)")
    g.add_argument("--noise", type=non_negative_float,
                   help="noise of moons (default 0.2), circles (0.1) or xor (0.1)")
    g.add_argument("--test-split", type=fraction, default=0.2, metavar="FRAC",
                   help="fraction of the data held out for the final test metrics (default 0.2)")
    g.add_argument("--val-split", type=fraction, default=0.1, metavar="FRAC",
                   help="fraction of the remaining (non-test) data used for validation (default 0.1); "
                        "splits are stratified for classification and use --seed")


def add_model_args(p: argparse.ArgumentParser) -> None:
    acts = sorted(set(_layers.ACTIVATIONS) - {"softmax"})
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=hidden_sizes, default=[64, 32], metavar="SIZES",
                   help="hidden layer widths, comma separated (default 64,32; 'none' for no hidden layer)")
    g.add_argument("--activation", default="relu", choices=acts, help="hidden activation (default relu)")
    g.add_argument("--init", choices=sorted(_layers.INITS),
                   help="weight initialization (default he_normal for relu-like activations, "
                        "glorot_normal otherwise)")
    g.add_argument("--dropout", type=dropout_rate, default=0.1, metavar="RATE",
                   help="dropout rate after every hidden layer, in [0, 1) (default 0.1)")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="floating-point type of parameters and data on the device (default float32)")
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of everything random: data generation, splits, initial weights, dropout, "
                        "shuffles (default 0)")


def add_training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--loss", default="auto", choices=["auto"] + sorted(_losses.LOSSES),
                   help="auto (default): bce for binary, cross_entropy for multiclass, mse for regression; "
                        "cross_entropy on a binary task uses two softmax outputs")
    g.add_argument("--optimizer", default="adam", choices=sorted(_optim.OPTIMIZERS),
                   help="sgd, momentum and nesterov (SGD with momentum 0.9), adam, adamw, rmsprop "
                        "(default adam)")
    g.add_argument("--lr", type=positive_float, metavar="LR",
                   help="learning rate > 0 (default 1e-3 for adam, adamw and rmsprop; 1e-2 for the SGD family)")
    g.add_argument("--schedule", default="constant", choices=_optim.SCHEDULES,
                   help="learning-rate schedule over all steps: constant (default), step (x0.1 every third of "
                        "training), exponential (to 1%% of lr at the end), cosine (to 0)")
    g.add_argument("--warmup", type=non_negative_int, default=0, metavar="STEPS",
                   help="linear learning-rate warm-up over this many steps (default 0)")
    g.add_argument("--epochs", type=positive_int, default=200, help="passes over the training data (default 200)")
    g.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="mini-batch size >= 1 (default 32)")
    g.add_argument("--l2", type=non_negative_float, default=1e-3, metavar="LAMBDA",
                   help="L2 penalty lambda/2 * sum(W^2) on the weights, added to the loss (default 1e-3)")
    g.add_argument("--weight-decay", type=non_negative_float, metavar="WD",
                   help="decoupled weight decay of --optimizer adamw (default 0.01)")
    g.add_argument("--clip-norm", type=positive_float, metavar="C",
                   help="rescale the gradient to global L2 norm at most C before each step (default: off)")
    g.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation loss has not improved for --patience epochs and "
                        "restore the best weights")
    g.add_argument("--patience", type=positive_int, help="epochs to wait for --early-stopping (default 10)")


# ---------------------------------------------------------------- data
@dataclass
class Dataset:
    """Raw data as loaded: X (n, d) float64, y (n,) numbers or text labels."""
    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    source: str  # "generated", "bundled" or the file path


def dataset_label(name: str) -> str:
    """A short name for output directories: the dataset name or the file's stem."""
    if name in DATASETS:
        return name
    return os.path.splitext(os.path.basename(name))[0] or "data"


def data_fingerprint(data: Dataset) -> str:
    """SHA-256 of the features and the target (a resumed run checks it trains on the same data)."""
    h = hashlib.sha256()
    X = np.ascontiguousarray(data.X, dtype=np.float64)
    h.update(repr(X.shape).encode())
    h.update(X.tobytes())
    y = np.asarray(data.y)
    if y.dtype.kind in "USO":
        h.update("\x00".join(str(v) for v in y.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()


def load_dataset(name: str = "moons", target: str | None = None, samples: int | None = None,
                 noise: float | None = None, seed: int = 0) -> Dataset:
    """Load a built-in dataset by name or a CSV / NPZ file (see ``--dataset``)."""
    if name in DATASETS:
        if target is not None:
            raise CLIError(f"--target applies to CSV and NPZ files, not to the built-in dataset {name!r}")
        if samples is not None and name not in GENERATED:
            raise CLIError(f"--samples applies to the generated datasets ({', '.join(GENERATED)}), not {name!r}")
        if noise is not None and name not in ("moons", "circles", "xor"):
            raise CLIError(f"--noise applies to moons, circles and xor, not {name!r}")
        return _builtin(name, samples, noise, seed)
    ext = os.path.splitext(name)[1].lower()
    if ext not in (".csv", ".npz") and not os.path.exists(name):
        raise CLIError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, "
                       "or a path to a .csv or .npz file")
    if not os.path.isfile(name):
        raise CLIError(f"dataset file not found: {name}")
    if samples is not None or noise is not None:
        raise CLIError("--samples and --noise apply to the generated datasets, not to files")
    if ext == ".npz":
        return _load_npz(name, target)
    if ext == ".csv":
        return _load_csv(name, target)
    raise CLIError(f"cannot read {name!r}: dataset files must end in .csv or .npz")


def _builtin(name: str, samples: int | None, noise: float | None, seed: int) -> Dataset:
    from sklearn import datasets as skd

    n = 1000 if samples is None else samples
    if name == "moons":
        X, y = skd.make_moons(n_samples=n, noise=0.2 if noise is None else noise, random_state=seed)
    elif name == "circles":
        X, y = skd.make_circles(n_samples=n, noise=0.1 if noise is None else noise, factor=0.5,
                                random_state=seed)
    elif name == "xor":
        rng = np.random.default_rng(seed)
        X = rng.uniform(-1.0, 1.0, size=(n, 2))
        y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
        X = X + rng.normal(scale=0.1 if noise is None else noise, size=X.shape)
    elif name == "classification":
        X, y = skd.make_classification(n_samples=n, n_features=20, n_informative=10, n_redundant=5,
                                       random_state=seed)
    else:
        bunch = getattr(skd, f"load_{name}")()
        return Dataset(name, np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target),
                       [str(f) for f in bunch.feature_names], "target", "bundled")
    return Dataset(name, np.asarray(X, dtype=np.float64), np.asarray(y), [f"x{i}" for i in range(X.shape[1])],
                   "y", "generated")


def _load_csv(path: str, target: str | None) -> Dataset:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"cannot read CSV file {path}: {exc}") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise CLIError(f"CSV file {path} is empty")
    header = [c.strip() for c in rows[0]]
    if target is None:
        raise CLIError(f"--target COLUMN is required for a CSV file; the columns of {path} are: {', '.join(header)}")
    if target not in header:
        raise CLIError(f"CSV file {path} has no target column {target!r}; its columns are: {', '.join(header)}")
    if len(rows) < 2:
        raise CLIError(f"CSV file {path} has a header but no data rows")
    t = header.index(target)
    feats = [i for i in range(len(header)) if i != t]
    if not feats:
        raise CLIError(f"CSV file {path} has no feature columns besides the target {target!r}")
    X = np.empty((len(rows) - 1, len(feats)))
    labels = []
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise CLIError(f"CSV file {path}, line {line}: {len(row)} fields, the header has {len(header)}")
        for j, i in enumerate(feats):
            X[r, j] = _cell(row[i], path, line, header[i])
        cell = row[t].strip()
        if cell.lower() in _MISSING:
            raise CLIError(f"CSV file {path}, line {line}: missing value in target column {target!r}")
        labels.append(cell)
    try:
        y: np.ndarray = np.array([float(v) for v in labels])
        if not np.all(np.isfinite(y)):
            raise CLIError(f"CSV file {path}: target column {target!r} holds an infinite value")
    except ValueError:
        y = np.array(labels)  # text class labels
    return Dataset(path, X, y, [header[i] for i in feats], target, path)


def _cell(text: str, path: str, line: int, column: str) -> float:
    s = text.strip()
    if s.lower() in _MISSING:
        raise CLIError(f"CSV file {path}, line {line}: missing value in column {column!r} "
                       "(impute or drop incomplete rows first)")
    try:
        v = float(s)
    except ValueError:
        raise CLIError(f"CSV file {path}, line {line}: non-numeric value {s!r} in feature column {column!r} "
                       "(features must be numbers)") from None
    if not math.isfinite(v):
        raise CLIError(f"CSV file {path}, line {line}: infinite value in column {column!r}")
    return v


def _load_npz(path: str, target: str | None) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - bad zip, pickled objects, ...
        raise CLIError(f"cannot read NPZ file {path}: {' '.join(str(exc).split())}") from None
    target = target or "y"
    if target not in arrays:
        raise CLIError(f"NPZ file {path} has no array {target!r} (pass --target NAME); "
                       f"its arrays are: {', '.join(arrays) or 'none'}")
    y = arrays.pop(target)
    if "X" in arrays:
        X, names = arrays["X"], None
    else:
        cols = {k: v for k, v in arrays.items() if v.ndim == 1}
        if not cols:
            raise CLIError(f"NPZ file {path} has no features: store an array X or one 1-D array per column")
        names = list(cols)
        try:
            X = np.column_stack([cols[k] for k in names])
        except ValueError:
            raise CLIError(f"NPZ file {path}: the feature arrays have different lengths") from None
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise CLIError(f"NPZ file {path}: need X of shape (n, features) and {target} of shape (n,), "
                       f"got {X.shape} and {y.shape}")
    if X.dtype.kind not in "biuf":
        raise CLIError(f"NPZ file {path}: features must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise CLIError(f"NPZ file {path}: the features contain missing (NaN) or infinite values")
    if y.dtype.kind in "biuf":
        y = y.astype(np.float64) if y.dtype.kind == "f" else y
        if not np.all(np.isfinite(y.astype(np.float64))):
            raise CLIError(f"NPZ file {path}: the target contains missing (NaN) or infinite values")
    elif y.dtype.kind not in "US":
        raise CLIError(f"NPZ file {path}: unsupported target dtype {y.dtype}")
    names = names or [f"x{i}" for i in range(X.shape[1])]
    return Dataset(path, X, y, names, target, path)


def resolve_task(y: np.ndarray, task: str = "auto", target: str = "y") -> tuple[str, np.ndarray, np.ndarray | None]:
    """(task, encoded y, class labels): classes become 0..k-1; regression targets float64."""
    text = y.dtype.kind in "USO"
    if task == "regression":
        if text:
            raise CLIError(f"target {target!r} holds text labels; it cannot be a regression target")
        if np.ptp(y.astype(np.float64)) == 0:
            raise CLIError(f"target {target!r} is constant; there is nothing to regress")
        return "regression", y.astype(np.float64), None
    classes, codes = np.unique(y, return_inverse=True)
    integral = text or bool(np.all(np.asarray(y, dtype=np.float64) == np.round(np.asarray(y, dtype=np.float64))))
    if task == "auto":
        if not text and (not integral or len(classes) > MAX_CLASSES):
            if np.ptp(y.astype(np.float64)) == 0:
                raise CLIError(f"target {target!r} is constant; there is nothing to learn")
            return "regression", y.astype(np.float64), None
        task = "binary" if len(classes) == 2 else "multiclass"
    if not integral:
        raise CLIError(f"target {target!r} has non-integer values; use --task regression or integer labels")
    if len(classes) < 2:
        raise CLIError(f"target {target!r} has a single class ({_plain(classes[0])}); "
                       "classification needs at least two")
    if task == "binary" and len(classes) != 2:
        raise CLIError(f"--task binary needs exactly two classes, target {target!r} has {len(classes)}")
    if classes.dtype.kind == "f":
        classes = classes.astype(np.int64)
    return task, codes.astype(np.int64), classes


def _plain(v: Any) -> Any:
    """A NumPy scalar as a plain Python value (for JSON and messages)."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Standardizer:
    """(x - mean) / std with statistics of the training split (std 0 -> 1)."""
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(Z, dtype=np.float64) * self.std + self.mean

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Standardizer":
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


@dataclass
class Prepared:
    """A dataset split, standardized and encoded for one model: everything the scripts train on."""
    data: Dataset
    task: str
    classes: np.ndarray | None
    output: str  # MLP output activation
    n_outputs: int
    scaler: Standardizer
    target_scaler: Standardizer | None
    idx: dict  # "train", "val", "test" -> row indices into data.X
    X: dict  # standardized inputs per split
    y: dict  # encoded targets per split (standardized for regression)

    @property
    def sizes(self) -> dict:
        return {k: int(v.shape[0]) for k, v in self.idx.items()}


def prepare(data: Dataset, task: str = "auto", loss: str = "auto", test_split: float = 0.2,
            val_split: float = 0.1, seed: int = 0, *, idx: dict | None = None, scaler: Standardizer | None = None,
            target_scaler: Standardizer | None = None) -> Prepared:
    """Encode the target, split test / validation off (stratified), standardize with training statistics.

    A resumed run passes the saved ``idx`` (row indices per split, e.g. from split.npz) and the saved
    ``scaler`` / ``target_scaler`` instead of recomputing them.
    """
    from sklearn.model_selection import train_test_split

    task, y, classes = resolve_task(data.y, task, data.target_name)
    loss_fn = None if loss == "auto" else _losses.get_loss(loss)
    if task == "regression" and loss_fn not in (None, _losses.mse):
        raise CLIError(f"--loss {loss} is a classification loss; a regression task needs --loss mse")
    if task == "multiclass" and loss_fn is _losses.binary_cross_entropy:
        raise CLIError(f"--loss {loss} needs a binary task; use cross_entropy for {len(classes)} classes")
    if task == "binary":
        output, k = ("softmax", 2) if loss_fn is _losses.softmax_cross_entropy else ("sigmoid", 1)
    elif task == "multiclass":
        output, k = "softmax", len(classes)
    else:
        output, k = "identity", 1

    def split(ids: np.ndarray, frac: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        strat = y[ids] if task != "regression" else None
        try:
            return train_test_split(ids, test_size=frac, random_state=seed, stratify=strat)
        except ValueError:
            pass  # too few samples of a class to stratify: split at random instead
        try:
            return train_test_split(ids, test_size=frac, random_state=seed)
        except ValueError as exc:
            raise CLIError(f"cannot make the {what} split of {len(ids)} samples: {exc}") from None

    if idx is None:
        rest, test = split(np.arange(len(y)), test_split, "test")
        train, val = split(rest, val_split, "validation")
        idx = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    else:
        idx = {k: np.asarray(idx[k], dtype=np.int64) for k in ("train", "val", "test")}
        if any(v.ndim != 1 or (v.size and (v.min() < 0 or v.max() >= len(y))) for v in idx.values()) \
                or not idx["train"].size:
            raise CLIError(f"the saved split does not fit the {len(y)} samples of the dataset")
    if task != "regression" and len(np.unique(y[idx["train"]])) < 2:
        raise CLIError("the training split holds a single class: use more data or a smaller --test-split")
    scaler = scaler or Standardizer.fit(data.X[idx["train"]])
    tscaler = (target_scaler or Standardizer.fit(y[idx["train"], None])) if task == "regression" else None
    X = {k: scaler.transform(data.X[v]) for k, v in idx.items()}
    Y = {k: (tscaler.transform(y[v, None])[:, 0] if tscaler else y[v]) for k, v in idx.items()}
    return Prepared(data, task, classes, output, k, scaler, tscaler, idx, X, Y)


def prepare_from_args(args: argparse.Namespace) -> Prepared:
    data = load_dataset(args.dataset, args.target, args.samples, args.noise, args.seed)
    return prepare(data, args.task, args.loss, args.test_split, args.val_split, args.seed)


# ---------------------------------------------------------------- model and training
def check_training_args(args: argparse.Namespace) -> None:
    """Cross-flag checks argparse cannot do; fills in the effective learning rate."""
    if args.weight_decay is not None and args.optimizer != "adamw":
        raise CLIError(f"--weight-decay applies to --optimizer adamw (not {args.optimizer}); "
                       "use --l2 for an L2 penalty with other optimizers")
    if args.patience is not None and not args.early_stopping:
        raise CLIError("--patience needs --early-stopping")
    if args.patience is None:
        args.patience = 10
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]


def build_model(args: argparse.Namespace, prep: Prepared, backend: Any) -> xpnet.MLP:
    model = xpnet.MLP([prep.X["train"].shape[1], *args.hidden, prep.n_outputs], activation=args.activation,
                      output=prep.output, dropout=args.dropout, init=args.init, seed=args.seed,
                      backend=backend, dtype=args.dtype)
    model.loss_fn(None if args.loss == "auto" else args.loss)  # ValueError now rather than mid-run
    return model


def steps_per_epoch(args: argparse.Namespace, prep: Prepared) -> int:
    n = prep.sizes["train"]
    return math.ceil(n / min(args.batch_size, n))


def make_optimizer(args: argparse.Namespace) -> Any:
    kw = {"weight_decay": args.weight_decay} if args.weight_decay is not None else {}
    return xpnet.make_optimizer(args.optimizer, args.lr, **kw)


def make_schedule(args: argparse.Namespace, prep: Prepared) -> Any:
    if args.schedule == "constant" and not args.warmup:
        return None
    return xpnet.make_schedule(args.schedule, args.lr, args.epochs * steps_per_epoch(args, prep), args.warmup)


def fit_kwargs(args: argparse.Namespace, prep: Prepared) -> dict:
    """Keyword arguments of xpnet.fit for these flags (a fresh optimizer and schedule each call)."""
    return dict(optimizer=make_optimizer(args), schedule=make_schedule(args, prep),
                loss=None if args.loss == "auto" else args.loss, l2=args.l2, epochs=args.epochs,
                batch_size=args.batch_size, validation_data=(prep.X["val"], prep.y["val"]),
                early_stopping=args.early_stopping, patience=args.patience, clip_norm=args.clip_norm,
                seed=args.seed)


class Progress:
    """fit callback: a tqdm bar over epochs (train loss, validation loss, accuracy) that also keeps
    every epoch's logs, so an interrupted run can still save its history. ``base``: the history of
    the epochs before a resume (the bar then starts at fit's ``initial_epoch``)."""

    def __init__(self, enabled: bool = True, desc: str | None = None, base: dict | None = None):
        self.enabled, self.desc, self.bar, self.base = enabled, desc, None, base
        self.logs: list[dict] = []

    def on_train_begin(self, info: dict) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=info["epochs"], initial=info.get("initial_epoch", 0), desc=self.desc,
                            unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=True)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.logs.append(dict(logs))
        if self.bar is not None:
            post = {"loss": f"{logs['loss']:.4f}"}
            if logs.get("val_loss") is not None:
                post["val_loss"] = f"{logs['val_loss']:.4f}"
            acc = logs.get("val_accuracy")
            if acc is not None:
                post["val_acc"] = f"{acc:.3f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

    def on_train_end(self, history: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def partial_history(self) -> dict:
        """A History-shaped dict from the epochs seen so far (no per-step losses or gradient norms)."""
        h = xpnet.History()
        for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
            h[k].extend((self.base or {}).get(k) or [])
        if self.base:
            h["best_epoch"] = self.base.get("best_epoch")
        start = len(h["epoch"])
        for e, logs in enumerate(self.logs):
            h["epoch"].append(start + e)
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
                h[k].append(logs.get(k))
        return h


def history_record(h: Any, steps: int, interrupted: bool = False) -> dict:
    """The history.json document: per-epoch and per-step series (epochs and steps numbered from 1)."""
    per_epoch = {"epoch": [e + 1 for e in h["epoch"]], "train_loss": h["loss"], "val_loss": h["val_loss"],
                 "train_accuracy": h["accuracy"], "val_accuracy": h["val_accuracy"], "lr": h["lr"],
                 "seconds": h["time"]}
    if h["grad_norms"]:
        per_epoch["grad_norms"] = h["grad_norms"]
    best = h.get("best_epoch")
    return {"per_epoch": per_epoch,
            "per_step": {"step": list(range(1, len(h["step_loss"]) + 1)), "loss": h["step_loss"]},
            "steps_per_epoch": steps, "epochs_run": len(h["epoch"]),
            "best_epoch": None if best is None else best + 1, "stopped_early": bool(h.get("stopped_early")),
            "interrupted": interrupted,
            "notes": "train_accuracy is measured on the training forwards (dropout active); grad_norms[e][l] "
                     "is the L2 norm of layer l's weight gradient at the last step of epoch e"
                     + ("; interrupted: the unfinished last epoch is not recorded" if interrupted else "")
                     + ("; per-step losses and gradient norms were not recorded (stopped outside a step)"
                        if h["epoch"] and not h["step_loss"] else "")}


HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "seconds")


def history_csv(record: dict) -> str:
    pe = record["per_epoch"]
    lines = [",".join(HISTORY_COLUMNS)]
    for i in range(len(pe["epoch"])):
        lines.append(",".join("" if pe[c][i] is None else repr(pe[c][i]) for c in HISTORY_COLUMNS))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the saved model
class RunModel:
    """A trained MLP with its input standardization: predicts from raw (unstandardized) inputs."""

    def __init__(self, model: xpnet.MLP, scaler: Standardizer, task: str, classes: np.ndarray | None,
                 target_scaler: Standardizer | None = None, meta: dict | None = None):
        self.model, self.scaler, self.task, self.classes = model, scaler, task, classes
        self.target_scaler, self.meta = target_scaler, meta or {}

    def predict_index(self, X: np.ndarray) -> np.ndarray:
        """Class indices 0..k-1 (classification) on the host."""
        return self.model.backend.to_numpy(self.model.predict(self.scaler.transform(X))).astype(np.int64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels as in the data, or regression values on the target's scale."""
        if self.task == "regression":
            z = self.model.backend.to_numpy(self.model.predict(self.scaler.transform(X)))
            return self.target_scaler.inverse_transform(z)[:, 0] if self.target_scaler else z[:, 0].astype(float)
        return self.classes[self.predict_index(X)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities in float64, rows summing to 1."""
        p = self.model.backend.to_numpy(self.model.forward(self.scaler.transform(X))).astype(np.float64)
        if p.shape[1] == 1:
            p = np.column_stack([1.0 - p[:, 0], p[:, 0]])
        return p / p.sum(axis=1, keepdims=True)


def save_model(out_dir: str, run: RunModel) -> list[str]:
    """Write model.npz (state arrays) and model.json (config, task, classes, standardization)."""
    state = run.model.state_dict()
    arrays = {f"W{i}": w for i, w in enumerate(state["weights"])}
    arrays.update({f"b{i}": b for i, b in enumerate(state["biases"])})
    arrays["dropout_counters"] = np.asarray(state["dropout_counters"], dtype=np.int64)
    write_npz(os.path.join(out_dir, "model.npz"), arrays)
    meta = {"format": MODEL_FORMAT, "model": state["config"], "task": run.task,
            "classes": None if run.classes is None else [_plain(c) for c in run.classes],
            "standardize": run.scaler.to_json(),
            "target_standardize": run.target_scaler.to_json() if run.target_scaler else None,
            "trained_on": run.model.backend.spec, "xpnet_version": xpnet.__version__, **run.meta}
    write_json(os.path.join(out_dir, "model.json"), meta)
    return ["model.npz", "model.json"]


def load_run_model(out_dir: str, backend: Any = "numpy") -> RunModel:
    """Rebuild the MLP (on ``backend``) and its standardization from a run directory of train.py."""
    with open(os.path.join(out_dir, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{out_dir}/model.json is not an xpnet run model (format {meta.get('format')!r})")
    with np.load(os.path.join(out_dir, "model.npz"), allow_pickle=False) as z:
        n = len(meta["model"]["sizes"]) - 1
        state = {"config": meta["model"], "weights": [z[f"W{i}"] for i in range(n)],
                 "biases": [z[f"b{i}"] for i in range(n)],
                 "dropout_counters": z["dropout_counters"].tolist()}
    model = xpnet.MLP.from_state_dict(state, backend=backend)
    classes = None if meta["classes"] is None else np.asarray(meta["classes"])
    ts = meta.get("target_standardize")
    return RunModel(model, Standardizer.from_json(meta["standardize"]), meta["task"], classes,
                    Standardizer.from_json(ts) if ts else None)


# ---------------------------------------------------------------- metrics
def compute_metrics(run: RunModel, X: np.ndarray, y_true: np.ndarray) -> dict:
    """Test metrics from raw inputs and raw targets (labels as in the data, or values).

    Computed with :mod:`xpnet.metrics` on the model's device (scikit-learn's definitions).
    Classification: accuracy, precision / recall / F1 (binary: of the second class;
    multiclass: macro averages), ROC AUC (one-vs-rest macro for multiclass; null when a
    class is missing from y_true), log loss and the confusion matrix (rows: true class,
    columns: predicted, in ``classes`` order). Regression: MSE, RMSE, MAE, R² on the
    target's own scale.
    """
    from xpnet import metrics as xm

    n = int(len(y_true))
    if run.task == "regression":
        pred, y = run.predict(X), np.asarray(y_true, dtype=np.float64)
        return {"task": "regression", "n": n, "mse": xm.mean_squared_error(y, pred),
                "rmse": xm.root_mean_squared_error(y, pred), "mae": xm.mean_absolute_error(y, pred),
                "r2": xm.r2_score(y, pred)}
    k = len(run.classes)
    lookup = {c: i for i, c in enumerate(run.classes.tolist())}
    yi = np.array([lookup[_plain(v)] for v in np.asarray(y_true).tolist()], dtype=np.int64)
    Xs = run.scaler.transform(X)
    pred, proba = run.model.predict(Xs), run.model.forward(Xs)  # on the device
    labels = list(range(k))
    avg = "binary" if k == 2 else "macro"
    score = (proba[:, 0] if proba.shape[1] == 1 else proba[:, 1]) if k == 2 else proba
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.UndefinedMetricWarning)  # a class absent from y_true: AUC null
        return {"task": run.task, "n": n, "classes": [_plain(c) for c in run.classes], "average": avg,
                "accuracy": xm.accuracy_score(yi, pred),
                "precision": xm.precision_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "recall": xm.recall_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "f1": xm.f1_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "roc_auc": xm.roc_auc_score(yi, score, labels=None if k == 2 else labels),
                "log_loss": xm.log_loss(yi, proba, labels=labels),
                "confusion_matrix": xm.confusion_matrix(yi, pred, labels=labels)}


# ---------------------------------------------------------------- files
def default_out_dir(prefix: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{prefix}-{stamp}")
    out, i = base, 2
    while os.path.exists(out):
        out, i = f"{base}-{i}", i + 1
    return out


def make_out_dir(path: str) -> str:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out {path} exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output directory {path}: {exc.strerror or exc}") from None
    return path


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str, write: Callable[[Any], None]) -> None:
    """Call ``write(binary_file)`` on a temporary file in ``path``'s directory, then os.replace it."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_safe(obj: Any) -> Any:
    """Non-finite floats become null (strict JSON); NumPy values become Python values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str, obj: Any) -> None:
    data = json.dumps(_json_safe(obj), indent=2, allow_nan=False).encode() + b"\n"
    write_atomic(path, lambda f: f.write(data))


def write_text(path: str, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_npz(path: str, arrays: dict) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays))


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` atomically (nothing to do when they are the same file)."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return
    with open(src, "rb") as f:
        write_atomic(dst, lambda out: shutil.copyfileobj(f, out))


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while saving (so a second signal cannot leave half-written outputs)."""
    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training step (the scripts' handler raises it): handled like Ctrl-C, exit 143."""

    signum = signal.SIGTERM


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated("SIGTERM")


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def environment(backend: Any) -> dict:
    """Library versions and the device, for config.json."""
    import sklearn

    versions = dict(backend.versions())
    versions.update({"xpnet": xpnet.__version__, "scikit-learn": sklearn.__version__})
    for mod in ("tqdm", "matplotlib"):
        with contextlib.suppress(ImportError):
            versions[mod] = __import__(mod).__version__
    return {"backend": backend.spec, "device": backend.device_name, "backend_description": backend.describe(),
            "versions": versions, "platform": platform.platform(), "command": [sys.executable] + sys.argv}


# ---------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str) -> None:
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    _pyplot().close(fig)


def _positive(values: Sequence[Any]) -> bool:
    vals = [v for v in values if v is not None]
    return bool(vals) and all(v > 0 for v in vals)


def plot_loss(record: dict, path: str, title: str = "") -> None:
    """Train loss per step (faint) and per epoch, validation loss per epoch."""
    plt = _pyplot()
    pe, ps = record["per_epoch"], record["per_step"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if ps["loss"]:
        steps = np.asarray(ps["step"], dtype=float) / record["steps_per_epoch"]
        ax.plot(steps, ps["loss"], color="tab:blue", alpha=0.2, lw=0.6, label="train loss (per step)")
    ax.plot(pe["epoch"], pe["train_loss"], color="tab:blue", lw=1.6, label="train loss (epoch mean)")
    if any(v is not None for v in pe["val_loss"]):
        ax.plot(pe["epoch"], [np.nan if v is None else v for v in pe["val_loss"]], color="tab:orange", lw=1.6,
                label="validation loss")
    if _positive(pe["train_loss"] + pe["val_loss"] + ps["loss"]):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (incl. L2 penalty)")
    ax.set_title(title or "loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_accuracy(record: dict, path: str, title: str = "") -> None:
    plt = _pyplot()
    pe = record["per_epoch"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label, color in (("train_accuracy", "train (dropout on)", "tab:blue"),
                              ("val_accuracy", "validation", "tab:orange")):
        if any(v is not None for v in pe[key]):
            ax.plot(pe["epoch"], [np.nan if v is None else v for v in pe[key]], color=color, lw=1.6, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_grad_norms(record: dict, sizes: Sequence[int], path: str, title: str = "") -> None:
    """Per-layer L2 norm of the weight gradient at the last step of each epoch."""
    plt = _pyplot()
    pe = record["per_epoch"]
    norms = np.asarray(pe["grad_norms"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i in range(norms.shape[1]):
        ax.plot(pe["epoch"], norms[:, i], lw=1.4, label=f"layer {i}: W{i} {sizes[i]}x{sizes[i + 1]}")
    if np.all(norms > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("||dL/dW|| (last step of the epoch)")
    ax.set_title(title or "gradient norms per layer")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_decision_boundary(run: RunModel, X_all: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                           path: str, title: str = "", feature_names: Sequence[str] = ("x0", "x1")) -> None:
    """Predicted class regions over the input plane (raw units), with the test points on top."""
    plt = _pyplot()
    lo, hi = X_all.min(axis=0), X_all.max(axis=0)
    pad = 0.08 * (hi - lo) + 1e-9
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 250),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], 250))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    k = len(run.classes)
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("RdBu" if k == 2 else "tab10")
    if k == 2:
        p = run.predict_proba(grid)[:, 1].reshape(gx.shape)
        cs = ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.7)
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1.2)
        fig.colorbar(cs, ax=ax, label=f"P(class {_plain(run.classes[1])})")
    else:
        idx = run.predict_index(grid).reshape(gx.shape)
        ax.contourf(gx, gy, idx, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.35, vmin=0, vmax=9)
    lookup = {c: i for i, c in enumerate(run.classes.tolist())}
    yi = np.array([lookup[_plain(v)] for v in np.asarray(y_test).tolist()])
    pred = run.predict_index(X_test)
    colors = [cmap(0.0 if i == 0 else 1.0) for i in yi] if k == 2 else [cmap(i % 10) for i in yi]
    ax.scatter(X_test[:, 0], X_test[:, 1], c=colors, edgecolors="k", s=22, linewidths=0.6)
    wrong = pred != yi
    if wrong.any():
        ax.scatter(X_test[wrong, 0], X_test[wrong, 1], marker="x", c="yellow", s=40, linewidths=1.5,
                   label=f"misclassified ({int(wrong.sum())})")
        ax.legend(loc="lower right")
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title or f"decision boundary, test accuracy {float(np.mean(~wrong)):.3f}")
    save_figure(fig, path)


# ---------------------------------------------------------------- running a script
def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.{digits}f}"
    return str(v)


def hp(v: Any) -> str:
    """A hyperparameter as the user would type it: 0.001, 1e-05, 64."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"error: {text}"


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main`` turning user errors into one ``error: ...`` line and exit status 2.

    CLIError, backends.BackendUnavailable and ValueError (which the library raises for bad
    arguments) -> 2; argparse's exits (--help, usage errors) -> their status; a
    KeyboardInterrupt not handled by ``main`` -> 130 (143 for :class:`Terminated`, i.e. SIGTERM).
    Set XPNET_DEBUG=1 to get the traceback instead.
    """
    debug = os.environ.get("XPNET_DEBUG", "") not in ("", "0")
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except (CLIError, backends.BackendUnavailable, ValueError) as exc:
        if debug:
            raise
        print(error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", 0) or signal.SIGINT)
        print(f"interrupted ({signal_name(signum)}): stopped", file=sys.stderr)
        return 128 + signum


def script_entry(main: Callable[[list[str] | None], int]) -> None:
    """``if __name__ == "__main__"`` body: Ctrl-C raises KeyboardInterrupt even when a parent
    started us with SIGINT ignored, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt: the
    same clean stop, exit status 143), then exit with main's status."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, _terminated)
    # A diverging run overflows (NumPy warns at every op); fit reports it as TrainingStopped instead.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"xpnet(\.|$)")
    sys.exit(main(None))
