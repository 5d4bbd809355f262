"""numba.cuda kernels: same module and function names and signatures as ``backends.numba``.

Importing a topic module here imports ``numba.cuda``; the registry only does so on first use.
"""
