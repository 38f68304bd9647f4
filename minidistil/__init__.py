"""minidistil: an educational DistilBERT with manual backprop in NumPy and Numba kernels."""
__version__ = "0.1.0"
