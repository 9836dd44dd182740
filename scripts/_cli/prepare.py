"""From a loaded dataset to training arrays: task detection, stratified splits, standardization."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import backends
import xpnet

from .args import CLIError
from .data import MAX_CLASSES, Dataset, load_from_settings, plain


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
        raise CLIError(f"target {target!r} has a single class ({plain(classes[0])}); "
                       "classification needs at least two")
    if task == "binary" and len(classes) != 2:
        raise CLIError(f"--task binary needs exactly two classes, target {target!r} has {len(classes)}")
    if classes.dtype.kind == "f":
        classes = classes.astype(np.int64)
    return task, codes.astype(np.int64), classes


@dataclass
class Standardizer:
    """(x - mean) / std with statistics of the training split (std 0 -> 1). Every statistic is a finite
    number and every std > 0: a column whose statistics overflow is refused, naming it."""
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.check()

    def check(self, names: list[str] | None = None, source: str = "the standardization",
              why: str = "its values overflow float64 or are not finite; rescale it") -> None:
        """CLIError naming the first column whose mean or std is not finite (or std not > 0)."""
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        bad = ~(np.isfinite(mean) & np.isfinite(std) & (std > 0)) if mean.shape == std.shape else np.ones(1, bool)
        if mean.ndim != 1 or bad.any():
            i = int(np.argmax(bad)) if mean.ndim == 1 and mean.shape == std.shape else 0
            col = f"column {names[i]!r}" if names and i < len(names) else f"column {i}"
            raise CLIError(f"{source}: {col} cannot be standardized (mean {mean.flat[i] if mean.size else None}, "
                           f"std {std.flat[i] if std.size else None}): {why}")

    @classmethod
    def fit(cls, X: np.ndarray, names: list[str] | None = None, source: str = "the data") -> "Standardizer":
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 0, std, np.where(np.isfinite(std), 1.0, std))
        scaler = cls.__new__(cls)
        scaler.mean, scaler.std = mean, std
        scaler.check(names, source)
        return scaler

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(Z, dtype=np.float64) * self.std + self.mean

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: Any, source: str = "the saved standardization") -> "Standardizer":
        """From :meth:`to_json` output; CLIError (naming ``source``) for anything but finite numbers."""
        try:
            mean, std = (np.asarray(d[k], dtype=np.float64) for k in ("mean", "std"))
        except (TypeError, ValueError, KeyError, IndexError):
            raise CLIError(f"{source} is not lists 'mean' and 'std' of numbers") from None
        scaler = cls.__new__(cls)
        scaler.mean, scaler.std = mean, std
        scaler.check(None, source, "a saved standardization holds finite numbers, and std > 0, only")
        return scaler


def standardize(scaler: Standardizer, X: np.ndarray, names: list[str], source: str) -> np.ndarray:
    """``scaler.transform(X)``; CLIError naming the first column with a value that overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        Z = scaler.transform(X)
    bad = ~np.isfinite(Z)
    if bad.any():
        j = int(np.argmax(bad.any(axis=0)))
        raise CLIError(f"{source}: column {names[j] if j < len(names) else j!r} cannot be standardized: a value "
                       f"overflows float64 ((x - mean) / std); rescale it")
    return Z


@dataclass
class Prepared:
    """A dataset split, standardized and encoded for one model: everything the scripts train on."""
    data: Dataset
    task: str
    classes: np.ndarray | None
    output: str  # the network's output head: sigmoid, softmax or identity
    n_outputs: int
    scaler: Standardizer
    target_scaler: Standardizer | None
    idx: dict  # "train", "val", "test" -> row indices into data.X
    X: dict  # standardized inputs per split
    y: dict  # encoded targets per split (standardized for regression)

    @property
    def sizes(self) -> dict:
        return {k: int(v.shape[0]) for k, v in self.idx.items()}

    @property
    def eval_split(self) -> str:
        """The split the final metrics are computed on: "test", or "train" when there is no test split."""
        return "test" if self.idx["test"].size else "train"


def prepare(data: Dataset, task: str = "auto", loss: str = "auto", test_split: float = 0.2,
            val_split: float = 0.1, seed: int = 0, *, idx: dict | None = None, scaler: Standardizer | None = None,
            target_scaler: Standardizer | None = None) -> Prepared:
    """Encode the target, split test / validation off (stratified), standardize with training statistics.

    A resumed run passes the saved ``idx`` (row indices per split, e.g. from split.npz) and the saved
    ``scaler`` / ``target_scaler`` instead of recomputing them.
    """
    task, y, classes = resolve_task(data.y, task, data.target_name)
    head = None if loss == "auto" else xpnet.nn.get_loss(loss).head  # the output a loss is fused with
    if task == "regression" and head is not None:
        raise CLIError(f"--loss {loss} is a classification loss; a regression task needs --loss mse")
    if task == "multiclass" and head == "sigmoid":
        raise CLIError(f"--loss {loss} needs a binary task; use cross_entropy for {len(classes)} classes")
    if task == "binary":
        output, k = ("softmax", 2) if head == "softmax" else ("sigmoid", 1)
    elif task == "multiclass":
        output, k = "softmax", len(classes)
    else:
        output, k = "identity", 1

    if idx is None:
        strat = y if task != "regression" else None
        rest, test = split(np.arange(len(y)), test_split, seed, 1, strat, "test")
        train, val = split(rest, val_split, seed, 2, strat, "validation")
        idx = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    else:
        idx = {k: np.asarray(idx[k], dtype=np.int64) for k in ("train", "val", "test")}
        if any(v.ndim != 1 or (v.size and (v.min() < 0 or v.max() >= len(y))) for v in idx.values()) \
                or not idx["train"].size:
            raise CLIError(f"the saved split does not fit the {len(y)} samples of the dataset")
    if task != "regression" and len(np.unique(y[idx["train"]])) < 2:
        raise CLIError("the training split holds a single class: use more data or a smaller --test-split")
    names, source = data.feature_names, f"dataset {data.source}"
    scaler = scaler or Standardizer.fit(data.X[idx["train"]], names, source)
    tscaler = (target_scaler or Standardizer.fit(y[idx["train"], None], [data.target_name], source)) \
        if task == "regression" else None
    X = {k: standardize(scaler, data.X[v], names, source) for k, v in idx.items()}
    Y = {k: (standardize(tscaler, y[v, None], [data.target_name], source)[:, 0] if tscaler else y[v])
         for k, v in idx.items()}
    return Prepared(data, task, classes, output, k, scaler, tscaler, idx, X, Y)


def split(ids: np.ndarray, frac: float, seed: int, counter: int, labels: np.ndarray | None,
          what: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) rows of ``ids``: ⌈frac·n⌉ held out, stratified by ``labels`` (each class gives its
    share, the rounding remainders going to the classes with the largest fractions) or at random.

    The order comes from xpnet's counter-based generator, key (seed, "split", counter): the same split
    on every machine and backend, without importing scikit-learn (half a second of start-up).
    """
    n = len(ids)
    if frac == 0:  # --test-split 0 / --val-split 0: no such split
        return ids, ids[:0]
    held = math.ceil(frac * n)
    if held >= n:
        flag = "--test-split" if what == "test" else "--val-split"
        raise CLIError(f"cannot make the {what} split of {n} samples: {flag} {frac} leaves no samples to train on")
    order = ids[_permutation(n, seed, counter)]
    if labels is None:
        return np.sort(order[held:]), np.sort(order[:held])
    classes, members = np.unique(labels[order], return_inverse=True)
    if np.bincount(members).min() < 2:  # a class of one member cannot be split: at random instead
        return np.sort(order[held:]), np.sort(order[:held])
    exact = np.bincount(members) * (held / n)
    share = np.floor(exact).astype(np.int64)
    for c in np.argsort(-(exact - share), kind="stable")[:held - int(share.sum())]:
        share[c] += 1
    out = np.concatenate([order[members == c][:share[c]] for c in range(len(classes))])
    return np.sort(np.setdiff1d(ids, out)), np.sort(out)


def _permutation(n: int, seed: int, counter: int) -> np.ndarray:
    be = backends.get("numpy")
    return be.to_numpy(xpnet.random.permutation(be.xp, n, seed, xpnet.random.STREAMS["split"], counter))


SMALL_TEST = 10  # a test split of fewer rows gives metrics that mean little


def split_note(prep: Prepared) -> str | None:
    """A ``note:`` line when the test split is too small to measure anything (e.g. 4 rows split 2/1/1)."""
    n = prep.sizes["test"]
    if 0 < n < SMALL_TEST:
        return (f"note: the test split holds {n} of {prep.data.X.shape[0]} rows, too few for meaningful metrics; "
                f"--test-split 0 --val-split 0 trains on every row and evaluates on the training data")
    return None


def prepare_from_args(args: argparse.Namespace) -> Prepared:
    """The data the data flags name, prepared for a fresh run."""
    return prepare(load_from_settings(vars(args)), args.task, args.loss, args.test_split, args.val_split, args.seed)
