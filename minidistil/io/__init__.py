"""Reading and writing checkpoints in the ecosystem's formats.

- :mod:`minidistil.io.safetensors`: the safetensors format in pure NumPy (strict reader, atomic writer).
- :mod:`minidistil.io.pretrained`: Hugging Face BERT/DistilBERT folders <-> minidistil models.
"""
from .safetensors import (SafetensorsError, SafetensorsFile, load_file, save_file, read_header,
                          bf16_bits_to_float32, float32_to_bf16_bits)

_PRETRAINED = ("load_pretrained", "save_pretrained", "PretrainedError", "minilm_folder", "teacher_from_pretrained")

__all__ = ["SafetensorsError", "SafetensorsFile", "load_file", "save_file", "read_header",
           "bf16_bits_to_float32", "float32_to_bf16_bits", *_PRETRAINED]


def __getattr__(name):
    # pretrained.py imports the models and the tokenizer; load it only when asked, so that
    # `import minidistil.io` stays light and free of import cycles.
    if name in _PRETRAINED:
        from . import pretrained
        return getattr(pretrained, name)
    raise AttributeError(f"module 'minidistil.io' has no attribute {name!r}")
