"""Training: the one loop (:mod:`~xpnet.train.loop`), ``fit`` around it, and the callbacks on its hooks."""
from .callbacks import Callback, EarlyStopping
from .fit import evaluate, fit
from .history import History, TrainingStopped
from .loop import Trainer
from .lr_find import LRFinderResult, lr_find

__all__ = ["fit", "evaluate", "History", "TrainingStopped", "Callback", "EarlyStopping", "Trainer", "lr_find",
           "LRFinderResult"]
