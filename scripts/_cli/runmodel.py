"""The trained model of a run folder: model.npz + model.json, and loading it back.

``model.npz`` holds every parameter as ``params/<name>`` and every buffer (e.g. BatchNorm running
statistics) as ``buffers/<name>``, by their layout names (``0.W``, ``1.body.0.W``, ...), and
``dropout_counters`` (plain NumPy arrays, loadable with ``allow_pickle=False``). ``model.json``
holds the network's config (an MLP's arguments or a layer list), the task, the class labels,
the input standardization (mean/std of the training split) and, for regression, the target
standardization. Run folders of the previous format (``W0, W1, ..., b0, b1, ...`` and an MLP
config) load too.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import xpnet
from xpnet.io.atomic import write_json

from .data import plain
from .prepare import Standardizer
from .runfolder import write_npz

MODEL_FORMAT = "xpnet-run-model/2"
LEGACY_FORMAT = "xpnet-run-model/1"  # model.npz: W{i}, b{i} of an MLP's Dense layers, dropout_counters


class RunModel:
    """A trained network with its input standardization: predicts from raw (unstandardized) inputs."""

    def __init__(self, model: xpnet.Network, scaler: Standardizer, task: str, classes: np.ndarray | None,
                 target_scaler: Standardizer | None = None):
        self.model, self.scaler, self.task, self.classes = model, scaler, task, classes
        self.target_scaler = target_scaler

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
    """Write model.npz (parameters, buffers, counters) and model.json (config, task, classes,
    standardization); returns their names."""
    state = run.model.state_dict()
    arrays = {f"{kind}/{name}": a for kind in ("params", "buffers") for name, a in state[kind].items()}
    arrays["dropout_counters"] = np.asarray(state["dropout_counters"], dtype=np.int64)
    write_npz(os.path.join(out_dir, "model.npz"), arrays)
    meta = {"format": MODEL_FORMAT, "model": state["config"], "task": run.task,
            "classes": None if run.classes is None else [plain(c) for c in run.classes],
            "standardize": run.scaler.to_json(),
            "target_standardize": run.target_scaler.to_json() if run.target_scaler else None,
            "trained_on": run.model.backend.spec, "xpnet_version": xpnet.__version__}
    write_json(os.path.join(out_dir, "model.json"), meta)
    return ["model.npz", "model.json"]


def load_run_model(out_dir: str, backend: Any = "numpy") -> RunModel:
    """Rebuild the network (on ``backend``) and its standardization from a run folder of train.py."""
    with open(os.path.join(out_dir, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") not in (MODEL_FORMAT, LEGACY_FORMAT):
        raise ValueError(f"{out_dir}/model.json is not an xpnet run model (format {meta.get('format')!r})")
    with np.load(os.path.join(out_dir, "model.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    state: dict = {"config": meta["model"], "dropout_counters": arrays.pop("dropout_counters").tolist()}
    if meta["format"] == LEGACY_FORMAT:
        n = len(meta["model"]["sizes"]) - 1
        state.update(weights=[arrays[f"W{i}"] for i in range(n)], biases=[arrays[f"b{i}"] for i in range(n)])
    else:
        for kind in ("params", "buffers"):
            state[kind] = {k.split("/", 1)[1]: a for k, a in arrays.items() if k.startswith(kind + "/")}
    model = xpnet.Network.from_state_dict(state, backend=backend)
    classes = None if meta["classes"] is None else np.asarray(meta["classes"])
    ts = meta.get("target_standardize")
    where = os.path.join(out_dir, "model.json")
    return RunModel(model, Standardizer.from_json(meta["standardize"], f"{where}: standardize"), meta["task"],
                    classes, Standardizer.from_json(ts, f"{where}: target_standardize") if ts else None)
