"""Checkpoints and other run files, written atomically and without pickle.

A checkpoint is one ``.npz`` file: every array under its own name (model parameters, optimizer
moments) plus one entry ``__meta__`` holding a JSON document as a ``uint8`` array (step, config,
random-generator states, ...). It is loaded with ``allow_pickle=False``, so a checkpoint can
never run code, and written to a temporary file in the same folder that is then renamed over
the old one (``os.replace`` is atomic): a run killed half-way leaves the previous checkpoint
intact, never a truncated one.

Random generators: ``numpy.random.Generator`` keeps its state in ``rng.bit_generator.state``, a
dict of plain ints and strings, which JSON stores exactly (Python ints have no size limit).
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from typing import Mapping

import numpy as np

from ..atomic import atomic_write

META_KEY = "__meta__"


class RunFileError(ValueError):
    """A run file (checkpoint, model, metrics log) is unreadable: the message names the file,
    says what is wrong and what to do; the command line prints it on one line (exit code 2)."""


def save_checkpoint(path: str, arrays: Mapping[str, np.ndarray], meta: Mapping | None = None) -> None:
    """Save ``arrays`` and the JSON-able ``meta`` to the ``.npz`` file ``path``, atomically."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a dict of name -> numpy array, got {type(arrays).__name__}")
    if META_KEY in arrays:
        raise ValueError(f"arrays must not use the reserved name {META_KEY!r}")
    payload = {}
    for k, a in arrays.items():
        a = np.asarray(a)
        if a.dtype == object:
            raise TypeError(f"arrays[{k!r}] has dtype object, which would need pickle")
        payload[k] = a
    meta_bytes = json.dumps(dict(meta or {}), sort_keys=True).encode("utf-8")
    payload[META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)  # (n_bytes,)
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path: str) -> tuple[dict, dict]:
    """Load ``(arrays, meta)`` from a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`RunFileError` (a ``ValueError``) naming ``path`` when the file is not a
    complete ``.npz`` (garbage, truncated by a copy, a pickle: never unpickled), or when its
    ``__meta__`` entry is missing or is not a JSON object.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):  # a bare .npy array, not an .npz archive
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
            NotImplementedError, KeyError) as e:
        why = "it holds pickled data, which is never loaded" if "pickle" in str(e) else \
            f"truncated or not an .npz archive ({' '.join(str(e).split()) or type(e).__name__})"
        raise RunFileError(f"{path} is not a readable minidistil file: {why}") from None
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise RunFileError(f"{path} has no {META_KEY} entry, so it was not written by minidistil "
                           "(or was rewritten by another tool)")
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"dtype {raw.dtype}, shape {raw.shape}")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    except (ValueError, UnicodeError) as e:
        raise RunFileError(f"{path}: its {META_KEY} entry is not a JSON object ({e})") from None
    return arrays, meta


# ---------------------------------------------------------------- random generators

def rng_state(rng: np.random.Generator) -> dict:
    """The JSON-able state of a NumPy ``Generator``."""
    return rng.bit_generator.state


def rng_from_state(state: Mapping) -> np.random.Generator:
    """A ``Generator`` that continues exactly where the one that gave ``state`` stopped."""
    name = state.get("bit_generator")
    bitgen_cls = getattr(np.random, str(name), None)
    if bitgen_cls is None:
        raise ValueError(f"unknown bit generator {name!r} in checkpoint")
    bg = bitgen_cls()
    bg.state = dict(state)
    return np.random.Generator(bg)


def prefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict:
    """``{prefix + name: array}``: several dicts (model, optimizer) in one checkpoint."""
    return {prefix + k: v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict:
    """The entries of ``arrays`` whose names start with ``prefix``, with it removed."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
