"""torch modules for what ``nn.Sequential`` cannot say by itself (needs ``fastbp[torch]``).

A bare ``nn.GRU`` returns a tuple ``(output, h_n)`` with ``h_n`` direction-major, so it cannot
sit inside an ``nn.Sequential``. :class:`Recurrent` wraps one and returns what a fastbp
recurrent layer returns; ``Network.to_torch`` produces it and ``Network.from_torch`` reads it.
"""

from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - exercised by the extras tests
    raise ImportError("fastbp.torch_modules needs PyTorch: pip install 'fastbp[torch]'") from error


class Recurrent(nn.Module):
    """A batch-first ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` as a single-output module.

    Parameters
    ----------
    rnn : nn.RNN, nn.GRU or nn.LSTM
        With ``batch_first=True``; its initial state is zero.
    return_sequences : bool, default False
        True: the last layer's hidden state at every step, ``(n, T, D*H)`` (torch's
        ``output``). False: the last layer's final hidden state of each direction,
        ``(n, D*H)``, forward first (torch's ``h_n[-D:]``: the forward direction at step T-1,
        the backward one at step 0).

    Examples
    --------
    >>> from torch import nn
    >>> from fastbp.torch_modules import Recurrent
    >>> model = nn.Sequential(Recurrent(nn.GRU(8, 32, batch_first=True)), nn.Linear(32, 10))
    >>> model(torch.zeros(4, 20, 8)).shape
    torch.Size([4, 10])
    """

    def __init__(self, rnn: nn.RNNBase, return_sequences: bool = False):
        super().__init__()
        if not isinstance(rnn, (nn.RNN, nn.GRU, nn.LSTM)):
            raise TypeError(f"rnn must be an nn.RNN, nn.GRU or nn.LSTM, got {type(rnn).__name__}")
        if not rnn.batch_first:
            raise ValueError("rnn must be built with batch_first=True (inputs (n, T, F))")
        self.rnn = rnn
        self.return_sequences = bool(return_sequences)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, state = self.rnn(x)
        if self.return_sequences:
            return output
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        directions = 2 if self.rnn.bidirectional else 1
        last = h_n[-directions:]  # (D, n, H): the last layer's directions
        return last.transpose(0, 1).reshape(x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"return_sequences={self.return_sequences}"


class Residual(nn.Module):
    """``activation(body(x) + shortcut(x))``, fastbp's :class:`fastbp.Residual`.

    Parameters
    ----------
    body : nn.Sequential
    shortcut : nn.Sequential or None
        None: the identity.
    activation : nn.Module or None
        Applied to the sum (None: none).
    """

    def __init__(self, body: nn.Sequential, shortcut: nn.Sequential | None = None,
                 activation: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.activation = activation

    def forward(self, x):
        out = self.body(x) + (x if self.shortcut is None else self.shortcut(x))
        return out if self.activation is None else self.activation(out)


class Concat(nn.Module):
    """``torch.cat([branch(x) for branch in branches], dim)``, fastbp's :class:`fastbp.Concat`
    (an empty ``nn.Sequential`` branch passes the input through)."""

    def __init__(self, branches: list[nn.Sequential], dim: int = 1):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.dim = dim

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=self.dim)


class Preprocessed(nn.Module):
    """A network with fastbp's numeric preprocessing around it, as ``Network.predict``
    applies it: missing values (NaN) imputed and features standardised, in float64, before
    the network; a regression's standardised outputs back in the target's units after it.

    Parameters
    ----------
    network : nn.Module
        The network (``Network.to_torch()``), in its dtype.
    input_shape : tuple of int
        One sample's shape as the network takes it.
    standardize, target_standardize : fastbp.Standardize or None
        The fitted steps (``net.standardize``, ``net.target_standardize``); their statistics
        become float64 buffers.

    Examples
    --------
    >>> module = net.to_torch(preprocessing=True).eval()
    >>> module(torch.from_numpy(X_raw))  # net.forward(X_raw), target units for a regression
    """

    def __init__(self, network: nn.Module, input_shape: tuple[int, ...], standardize=None,
                 target_standardize=None):
        super().__init__()
        self.network, self.input_shape = network, tuple(input_shape)
        self.dtype = next((p.dtype for p in network.parameters()), torch.float32)
        self.impute = standardize is not None and standardize.impute is not None
        for prefix, step in (("", standardize), ("target_", target_standardize)):
            if step is not None:  # the centre and scale transform uses, and the imputed mean
                for name, value in (("mean", step.mean_), ("centre", step.get_centre()),
                                    ("scale", step.scale_)):
                    self.register_buffer(prefix + name, torch.as_tensor(value, dtype=torch.float64))
        self.standardizes = standardize is not None
        self.unstandardizes = target_standardize is not None

    def forward(self, x):
        x = x.to(torch.float64).flatten(1)
        if self.impute:
            x = torch.where(torch.isnan(x), self.mean, x)
        if self.standardizes:
            x = (x - self.centre) / self.scale
        shape = [-1 if d is None else d for d in self.input_shape]  # (None: any length)
        out = self.network(x.to(self.dtype).reshape(x.shape[0], *shape))
        if self.unstandardizes:
            out = (out.to(torch.float64).flatten(1) * self.target_scale
                   + self.target_centre).to(self.dtype)
        return out
