"""fastbp: backpropagation on the CPU with fused Numba kernels over flat parameter buffers."""

from . import datasets
from .io import load
from .layers import Dense, Dropout, Layer
from .network import Network
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .schedulers import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR
from .training import Callback, EarlyStopping, History

__version__ = "0.1.0"

__all__ = ["Network", "Layer", "Dense", "Dropout", "Optimizer", "SGD", "Adagrad", "RMSprop",
           "Adam", "AdamW", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
           "Callback", "EarlyStopping", "History", "load", "datasets", "__version__"]
