"""xpnet: neural networks with hand-derived backprop, written once against the Python array API,
giving the same numbers on NumPy, CuPy, PyTorch and array-api-strict.

    import xpnet
    from xpnet.nn import Dense, BatchNorm1d, Dropout, Residual
    model = xpnet.Network([Dense(2, 64, "relu"), BatchNorm1d(64), Dropout(0.1), Dense(64, 1)], backend="numpy")
    model = xpnet.MLP([2, 64, 32, 1], dropout=0.1, backend="numpy")      # the same kind of thing, by sizes
    history = xpnet.fit(model, X, y, optimizer=xpnet.Adam(lr=1e-3), l2=1e-3, epochs=200, batch_size=32)
    proba = model.forward(X_test)
"""
from . import nn, optim, random
from .nn import MLP, Network
from .optim import (LBFGS, SGD, Adam, AdamW, Constant, Cosine, Exponential, RMSProp, StepDecay, Warmup,
                    clip_by_norm, clip_by_value, make_optimizer, make_schedule)
from . import checkpoint, diagnostics, metrics  # noqa: E402 - save/load/resume; layer statistics; device metrics
from .train import Callback, History, Trainer, TrainingStopped, evaluate, fit, lr_find  # noqa: E402
from .gradcheck import check_layer, gradcheck  # noqa: E402 - finite-difference checks (xpnet.gradcheck is the function)

from ._version import __version__  # noqa: E402


def __getattr__(name):
    # scikit-learn estimators, imported lazily: xpnet imports without scikit-learn installed.
    if name in ("XPNetClassifier", "XPNetRegressor"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Network", "MLP", "fit", "evaluate", "History", "TrainingStopped", "Callback", "SGD", "Adam", "AdamW",
           "RMSProp", "LBFGS", "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "clip_by_value",
           "clip_by_norm", "make_optimizer", "make_schedule", "nn", "optim", "random", "checkpoint", "metrics",
           "diagnostics", "gradcheck", "check_layer", "lr_find", "Trainer", "__version__"]
