"""fastbp: backpropagation on the CPU with fused Numba kernels over flat parameter buffers."""

from .layers import Dense, Dropout, Layer
from .network import Network
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = ["Network", "Layer", "Dense", "Dropout", "Optimizer", "SGD", "Adagrad", "RMSprop",
           "Adam", "AdamW", "__version__"]
