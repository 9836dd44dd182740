"""scikit-learn's bundled datasets, read straight from its data folder.

Importing scikit-learn costs about half a second (it imports SciPy), more than a short run's
training: the four small datasets it ships as CSV files are read here with NumPy, without that
import. The arrays equal ``sklearn.datasets.load_<name>()``'s (a test checks it).
"""
from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np

from .args import CLIError

__all__ = ["load_bundled", "FEATURE_NAMES"]

_FILES = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv",
          "digits": "digits.csv.gz"}
_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave points",
             "symmetry", "fractal dimension")
FEATURE_NAMES = {
    "iris": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
    "wine": ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
             "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines",
             "proline"],
    "breast_cancer": ([f"mean {m}" for m in _MEASURES] + [f"{m} error" for m in _MEASURES]
                      + [f"worst {m}" for m in _MEASURES]),
    "digits": [f"pixel_{row}_{col}" for row in range(8) for col in range(8)],
}


def _data_folder() -> str:
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the bundled datasets come with scikit-learn: pip install scikit-learn "
                       "(or pip install -e \".[scripts]\")")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data")


def load_bundled(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X float64, y int64, feature names) of the bundled dataset ``name``."""
    path = os.path.join(_data_folder(), _FILES[name])
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            rows = np.loadtxt(f, delimiter=",", skiprows=0 if name == "digits" else 1, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read scikit-learn's bundled {name} data ({path}): {exc}") from None
    return rows[:, :-1], rows[:, -1].astype(np.int64), list(FEATURE_NAMES[name])
