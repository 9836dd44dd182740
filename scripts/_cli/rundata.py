"""A run folder read back for the pages: its JSON files, its model, and the data it was trained on."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .args import CLIError
from .data import load_from_settings
from .prepare import Prepared, prepare
from .runmodel import RunModel


def require_folder(path: str, what: str) -> str:
    """``path`` if it is a folder holding a run (config.json, parity.json or model.json), else CLIError."""
    if not os.path.isdir(path):
        raise CLIError(f"{what} {path}: no such run folder")
    if not any(os.path.isfile(os.path.join(path, f)) for f in ("config.json", "parity.json", "model.json")):
        raise CLIError(f"{what} {path}: not a run folder (no config.json, model.json or parity.json; "
                       f"run folders are written by scripts/train.py and scripts/parity.py)")
    return path


def read_json(path: str) -> Any:
    """A JSON file, or None when it is absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_data(run_dir: str, run: RunModel, config: dict | None) -> Prepared | None:
    """The run's data, split (split.npz) and standardization (the model's) as train.py used them;
    None when config.json, split.npz or the dataset cannot be read any more."""
    settings = (config or {}).get("settings")
    if not isinstance(settings, dict) or config.get("script") != "train.py":
        return None
    try:
        with np.load(os.path.join(run_dir, "split.npz"), allow_pickle=False) as z:
            idx = {k: z[k] for k in ("train", "val", "test")}
        data = load_from_settings(settings)
        return prepare(data, settings.get("task", "auto"), settings.get("loss", "auto"),
                       settings.get("test_split", 0.2), settings.get("val_split", 0.1), settings.get("seed", 0),
                       idx=idx, scaler=run.scaler, target_scaler=run.target_scaler)
    except (OSError, KeyError, ValueError, CLIError):
        return None
