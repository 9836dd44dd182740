"""xpnet: fully connected networks with hand-derived backprop, written once against the
Python array API, giving the same numbers on NumPy, CuPy, PyTorch and array-api-strict.

    import xpnet
    model = xpnet.MLP([2, 64, 32, 1], dropout=0.1, backend="numpy")
    history = xpnet.fit(model, X, y, optimizer=xpnet.Adam(lr=1e-3), l2=1e-3, epochs=200, batch_size=32)
    proba = model.forward(X_test)
"""
from . import layers, losses, optim, random
from .model import MLP
from .optim import (SGD, Adam, AdamW, Constant, Cosine, Exponential, RMSProp, StepDecay, Warmup,
                    clip_by_norm, clip_by_value, make_optimizer, make_schedule)
from .train import History, TrainingStopped, evaluate, fit

__version__ = "0.1.0"

__all__ = ["MLP", "fit", "evaluate", "History", "TrainingStopped", "SGD", "Adam", "AdamW", "RMSProp",
           "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "clip_by_value", "clip_by_norm",
           "make_optimizer", "make_schedule", "layers", "losses", "optim", "random", "__version__"]
