"""Numba kernels. Nothing here validates or allocates per step: see ``fastbp.network``."""
