"""What every layer kind's test file checks, in the tinygrad style: the spec, the kernels and
the numpy twin tested together on small networks that put the kind between other layers.

A kind's file builds networks with it (``case``) and calls these; each check states its
tolerance and why.
"""

from __future__ import annotations

import numpy as np

# The checks every kind passes, users' kinds included (fastbp.testing), under the names
# the layer test files use.
from fastbp.testing import (  # noqa: E402,F401
    RTOL,
    check_finite_differences,
    check_twin,
    data_for,
    jitter_parameters,
    numerical_grad,
    rel_err,
)


def check_flat_and_shaped_inputs_agree(net, n: int = 4) -> None:
    """X as (n, *input_shape) and as its C-order flattening give the same outputs."""
    X, _ = data_for(net, n)
    assert np.array_equal(net.forward(X), net.forward(X.reshape(n, -1)))


def check_torch(net, module, n: int = 5, seed: int = 0) -> None:
    """The network's evaluation-mode output and training-mode loss against the torch
    ``module`` holding the same weights (float64, so 1e-10: only summation order differs);
    returns fastbp's parameter gradient and torch's parameters' gradients concatenated in
    ``module.parameters()`` order, for the caller to map onto fastbp's layout."""
    import torch

    X, y = data_for(net, n, seed)
    assert net.loss == "mse"
    module = module.double().eval()
    xt = torch.from_numpy(X if X.dtype.kind in "iu" else X.astype(np.float64))
    out_t = module(xt).reshape(n, -1).detach().numpy()
    assert rel_err(net.forward(X), out_t) <= 1e-10
    module.train()
    yt = torch.from_numpy(y.astype(np.float64))
    loss_t = torch.nn.functional.mse_loss(module(xt).reshape(n, -1), yt)
    loss_t.backward()
    loss_k, grad_k = net.loss_and_grad(X, y)
    assert abs(loss_k - loss_t.item()) <= 1e-10 * abs(loss_t.item())
    grad_t = np.concatenate([p.grad.detach().numpy().ravel() for p in module.parameters()]) \
        if any(True for _ in module.parameters()) else np.zeros(0)
    return grad_k, grad_t
