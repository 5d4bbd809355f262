"""numba (CPU) kernels. Each topic module exports kernels named like their public functions."""
