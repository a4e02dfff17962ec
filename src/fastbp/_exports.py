"""The interop methods of :class:`fastbp.Network` (``fastbp.interop``; torch and onnx are
optional extras), kept here: network.py is at its size limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .network import Network


class Exports:
    """``Network.to_torch``, ``Network.from_torch`` and ``Network.to_onnx``."""

    def to_torch(self, preprocessing: bool = False):
        """The network as a ``torch.nn.Sequential`` with the same architecture and weights.

        Dense becomes ``nn.Linear`` (weight transposed) and a layer's activation a module
        after it; convolutions, pooling, BatchNorm (with its running statistics), LayerNorm,
        Dropout and Flatten map to their torch modules, GlobalAvgPool to
        ``AdaptiveAvgPoolNd(1)`` + ``Flatten``, RNN/GRU/LSTM to
        :class:`fastbp.torch_modules.Recurrent` around the torch layer. The module is in
        training mode, as every new torch module: call ``.eval()`` for the outputs of
        :meth:`forward`. The loss is not part of it (outputs are logits for the
        classification losses). ``preprocessing=True`` wraps it with the numeric
        preprocessing (:func:`fastbp.interop.to_torch`). Needs ``fastbp[torch]``.

        Examples
        --------
        >>> module = net.to_torch().eval()
        >>> module(torch.from_numpy(X))  # equals net.forward(X)
        """
        from .interop import to_torch

        with self.engine.access.reading():
            return to_torch(self, preprocessing=preprocessing)

    @classmethod
    def from_torch(cls, module, input_shape: Sequence[int] | None = None,
                   loss: str = "cross_entropy", dtype: str | None = None,
                   seed: int | None = 0) -> Network:
        """A network with a torch module's architecture and weights (copied).

        Parameters
        ----------
        module : torch.nn.Module
            An ``nn.Sequential`` (nested ones are flattened) of ``Linear``, ``Conv1d``,
            ``Conv2d``, ``MaxPool1d/2d``, ``AvgPool1d/2d``, ``AdaptiveAvgPoolNd(1)`` followed
            by ``Flatten``, ``Flatten``, ``Dropout``, ``BatchNorm1d/2d``, ``LayerNorm``,
            ``ReLU``, ``LeakyReLU(0.01)``, ``Sigmoid``, ``Tanh``, ``Identity`` and
            :class:`fastbp.torch_modules.Recurrent` (a stacked RNN becomes one fastbp layer
            per torch layer, its dropout Dropout layers). An activation right after a Linear
            or convolution becomes that layer's ``activation``. Anything else raises a
            TypeError naming the module; an unsupported setting a ValueError naming it.
        input_shape : tuple of int, optional
            One sample's shape, as for :class:`Network` (needed unless the first module is
            a Linear, or an Embedding: then the sequence length varies).
        loss : str, default "cross_entropy"
        dtype : {"float32", "float64"}, optional
            Default: the module's parameter dtype.
        seed : int or None, default 0
            Seeds dropout and shuffling (the weights are the module's).
        """
        from .interop import from_torch

        return from_torch(module, input_shape=input_shape, loss=loss, dtype=dtype, seed=seed)

    def to_onnx(self, path, opset: int | None = None, dtype: str | None = None,
                preprocessing: bool | None = None):
        """Write the inference graph (evaluation mode) to ``path`` as an ONNX model.

        ``preprocessing`` (default: if the network carries any) makes the graph do what
        :meth:`predict` does: the table's columns as inputs, imputation, standardisation and
        one-hot encoding, outputs ``"label"`` and ``"probabilities"`` or ``"prediction"``
        (:func:`fastbp.interop.to_onnx`). Otherwise its input is ``"input"``, shape
        ``(batch, *input_shape)``, and its output ``"output"`` what :meth:`forward` returns.
        Recurrent layers use ONNX's RNN/GRU/LSTM operators, Dropout is left out. The model
        passes ``onnx.checker.check_model`` before it is written. Needs ``fastbp[onnx]``.

        Parameters
        ----------
        path : str or Path
        opset : int, optional
            The ONNX opset, from 13 to the installed onnx's newest; default 17. Before 17,
            LayerNorm is written with primitive operators.
        dtype : {"float32", "float64"}, optional
            The model's element type; default the network's. ONNX Runtime's CPU provider
            (1.32) has no float64 Conv, RNN, GRU or LSTM: export a float64 network that has
            them with ``dtype="float32"`` to run it there.
        preprocessing : bool, optional
            Default: True if :attr:`columns`, :attr:`standardize` or the label encoders are set.

        Returns
        -------
        onnx.ModelProto
        """
        from .interop import to_onnx

        with self.engine.access.reading():
            return to_onnx(self, path, opset=opset, dtype=dtype, preprocessing=preprocessing)
