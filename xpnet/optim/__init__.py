"""Optimizers, gradient clipping and learning-rate schedules over the flat parameter buffer."""
from .clipping import clip_by_norm, clip_by_value
from .lbfgs import LBFGS
from .loss_scaling import LossScaler
from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSProp, make_optimizer
from .schedules import SCHEDULES, Constant, Cosine, Exponential, Schedule, StepDecay, Warmup, make_schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSProp", "LBFGS", "OPTIMIZERS", "make_optimizer", "clip_by_value",
           "clip_by_norm", "Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "Warmup", "SCHEDULES",
           "make_schedule", "LossScaler"]
