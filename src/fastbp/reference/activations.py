"""Activations and their derivatives, by name: the numpy twins that each activation's one
definition in ``fastbp.activations`` carries (users' registered activations included)."""

import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def value(name, z):
    """f(z) elementwise."""
    from ..activations import ACTIVATIONS

    return ACTIVATIONS[name].value(z)


def derivative(name, z, out):
    """f'(z) elementwise, given the pre-activation ``z`` and the output ``out`` = f(z)."""
    from ..activations import ACTIVATIONS

    return ACTIVATIONS[name].derivative(z, out)
