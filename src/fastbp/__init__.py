"""fastbp: backpropagation on the CPU with fused Numba kernels over flat parameter buffers."""

from . import columns, datasets, layers, testing, text
from ._jit import kernel
from ._threads import get_num_threads, set_num_threads
from .activations import register_activation
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .columns import TableEncoder
from .io import load, save
from .layers import *  # noqa: F403 (every layer kind: Dense, Dropout, Flatten, Activation...)
from .layers import __all__ as _layer_names
from .loggers import CSVLogger, TensorBoard
from .losses import register_loss
from .monitoring import Diagnosis, GradientMonitor, diagnose
from .network import Network
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .preprocessing import LabelEncoder, Standardize
from .schedulers import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR

__version__ = "0.1.0"

__all__ = ["Network", *[n for n in _layer_names if n[0].isupper() and n != "LAYER_TYPES"],
           "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "StepLR", "ExponentialLR",
           "CosineAnnealingLR", "ReduceLROnPlateau", "Callback", "EarlyStopping", "History",
           "ModelCheckpoint", "CSVLogger", "TensorBoard", "GradientMonitor", "Standardize",
           "LabelEncoder", "TableEncoder", "save", "load", "set_num_threads",
           "get_num_threads", "kernel", "register_activation", "register_loss", "testing",
           "columns", "datasets", "layers", "text", "diagnose", "Diagnosis", "__version__"]
