"""minidistil: an educational DistilBERT with manual backprop in NumPy and Numba kernels.

The names users import, as transformers spells them::

    from minidistil import Bert, DistilBert, BertConfig, WordPieceTokenizer
    from minidistil import load_pretrained, save_pretrained

They are loaded on first use (module ``__getattr__``), so ``import minidistil`` itself is cheap:
it imports neither NumPy nor Numba and changes nothing in the process.
"""
__version__ = "0.1.0"

_EXPORTS = {
    "Bert": "minidistil.models",
    "DistilBert": "minidistil.models",
    "BertConfig": "minidistil.models",
    "ModelOutput": "minidistil.models",
    "WordPieceTokenizer": "minidistil.data.tokenizer",
    "train_wordpiece": "minidistil.data.tokenizer",
    "load_pretrained": "minidistil.io.pretrained",
    "save_pretrained": "minidistil.io.pretrained",
    "PretrainedError": "minidistil.io.pretrained",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'minidistil' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
