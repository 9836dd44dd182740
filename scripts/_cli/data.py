"""Datasets: scikit-learn's generators and bundled sets (nothing is downloaded), CSV and NPZ files."""
from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .args import CLIError, non_negative_float, positive_int, split_fraction
from .bundled import load_bundled

GENERATED = ("moons", "circles", "xor", "classification")
FIXED = ("xor4",)  # the tutorials' XOR: the four rows of the truth table
BUNDLED = ("digits", "breast_cancer", "iris", "wine")
DATASETS = GENERATED + FIXED + BUNDLED
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])
DEFAULT_FEATURES = 20  # of the generated classification dataset
TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 50  # integer targets with more distinct values than this are auto-detected as regression
_MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The data flags: --dataset, --target, --task, --samples, --noise, --features, --test-split, --val-split."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="moons", metavar="NAME|PATH",
                   help=f"one of {', '.join(DATASETS)} (scikit-learn generators and bundled datasets, nothing "
                        "is downloaded; xor4 is the 4-row XOR truth table), or a path to a .csv file (header row, "
                        "numeric feature columns) or .npz file (arrays X and y, or one 1-D array per column). "
                        "Default: moons")
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
    g.add_argument("--features", type=positive_int, metavar="N",
                   help=f"number of features of the generated classification dataset (default {DEFAULT_FEATURES}; "
                        "N // 2 of them informative (at least 2), N // 4 redundant; N >= 2)")
    g.add_argument("--test-split", type=split_fraction, default=0.2, metavar="FRAC",
                   help="fraction of the data held out for the final test metrics, in [0, 1) (default 0.2); 0: "
                        "no test split, train on everything and evaluate on the training data (the summary and "
                        "metrics.json say so)")
    g.add_argument("--val-split", type=split_fraction, default=0.1, metavar="FRAC",
                   help="fraction of the remaining (non-test) data used for validation, in [0, 1) (default 0.1; "
                        "0: no validation, so no --early-stopping); splits are stratified for classification "
                        "and use --seed")


@dataclass
class Dataset:
    """Raw data as loaded: X (n, d) float64, y (n,) numbers or text labels."""
    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    source: str  # "generated", "fixed", "bundled" or the file path


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
                 noise: float | None = None, seed: int = 0, features: int | None = None) -> Dataset:
    """Load a built-in dataset by name or a CSV / NPZ file (see ``--dataset``)."""
    if features is not None and name != "classification":
        raise CLIError(f"--features applies to the generated classification dataset, not {name!r}")
    if features is not None and features < 2:
        raise CLIError(f"--features {features}: the classification dataset needs at least 2 features")
    if name in DATASETS:
        if target is not None:
            raise CLIError(f"--target applies to CSV and NPZ files, not to the built-in dataset {name!r}")
        if samples is not None and name not in GENERATED:
            raise CLIError(f"--samples applies to the generated datasets ({', '.join(GENERATED)}), not {name!r}")
        if noise is not None and name not in ("moons", "circles", "xor"):
            raise CLIError(f"--noise applies to moons, circles and xor, not {name!r}")
        return _builtin(name, samples, noise, seed, features or DEFAULT_FEATURES)
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


def load_from_settings(settings: dict) -> Dataset:
    """The dataset the data flags name: ``settings`` maps their dests to values (``vars(args)``, or the
    settings a run saved)."""
    return load_dataset(settings.get("dataset", "moons"), settings.get("target"), settings.get("samples"),
                        settings.get("noise"), settings.get("seed", 0), settings.get("features"))


def _builtin(name: str, samples: int | None, noise: float | None, seed: int, features: int) -> Dataset:
    if name == "xor4":
        return Dataset(name, XOR_X.copy(), XOR_Y.copy(), ["x0", "x1"], "y", "fixed")
    if name in BUNDLED:  # read without importing scikit-learn (half a second)
        X, y, names = load_bundled(name)
        return Dataset(name, X, y, names, "target", "bundled")
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
        informative = max(2, features // 2)
        X, y = skd.make_classification(n_samples=n, n_features=features, n_informative=informative,
                                       n_redundant=min(features // 4, features - informative), random_state=seed)
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
    dups = sorted({c for c in header if header.count(c) > 1})
    if dups:
        raise CLIError(f"CSV file {path} has duplicate column names {dups}: rename them (a second column of the "
                       f"target's name would feed the target to the model as a feature)")
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
            raise CLIError(f"CSV file {path}, line {int(np.argmin(np.isfinite(y))) + 2}: non-finite value "
                           f"{labels[int(np.argmin(np.isfinite(y)))]!r} in target column {target!r}")
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
        raise CLIError(f"CSV file {path}, line {line}: non-finite value {s!r} in column {column!r}")
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


def plain(v: Any) -> Any:
    """A NumPy scalar as a plain Python value (for JSON and messages)."""
    return v.item() if isinstance(v, np.generic) else v
