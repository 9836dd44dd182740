"""Layers, networks and objectives: forward and hand-derived backward, written once against ``xp``.

    from xpnet.nn import Dense, BatchNorm1d, Dropout, Residual
    net = xpnet.Network([Dense(64, 128, "relu"), BatchNorm1d(128), Dropout(0.1),
                         Residual([Dense(128, 128, "relu"), Dense(128, 128)]), Dense(128, 10, "softmax")])

The layer contract is in :mod:`xpnet.nn.layer`; where parameters live, in :mod:`xpnet.nn.layout`.
"""
from .activations import (
                          ACTIVATIONS,
                          GELU,
                          Activation,
                          Identity,
                          LeakyReLU,
                          ReLU,
                          Sigmoid,
                          Softmax,
                          Tanh,
                          make_activation,
                          sigmoid,
)
from .batchnorm import BatchNorm1d
from .binding import Bound, bind_tree, standalone
from .configs import network_from_config
from .containers import Residual, Sequential
from .dense import Dense
from .dropout import Dropout
from .layer import LAYERS, Buffer, Layer, Param, layer_from_config, register
from .layout import Entry, Layout
from .losses import LOSSES, get_loss
from .mlp import MLP
from .network import Network
from .objective import Objective
from .tree import walk

__all__ = ["Layer", "Param", "Buffer", "register", "layer_from_config", "LAYERS", "Dense", "Dropout",
           "BatchNorm1d", "Residual", "Sequential", "Activation", "Identity", "ReLU", "LeakyReLU", "Sigmoid",
           "Tanh", "GELU", "Softmax", "ACTIVATIONS", "make_activation", "sigmoid", "Network", "MLP",
           "network_from_config", "Layout", "Entry", "walk", "Objective", "LOSSES", "get_loss", "bind_tree",
           "Bound", "standalone"]
