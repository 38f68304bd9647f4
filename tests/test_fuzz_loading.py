"""A time-bounded fuzz of the safetensors reader and ``load_pretrained`` (issue 20).

Seeded byte mutations (flips, truncations, splices of random bytes, header-field rewrites) of a
valid tiny Hugging Face folder. Every outcome must be a successful load or a ``SafetensorsError`` /
``PretrainedError``: never another exception, never a crash. The cases found so far live in
``tests/fuzz_corpus/`` and are checked on every run.

The bound: ``MINIDISTIL_FUZZ_SECONDS`` (default 2 s per test, so the ordinary suite stays fast);
``.ci/run`` runs this file once more with 30 s. A failure prints the seed that reproduces it.
"""
import json
import os
import shutil
import time
import warnings

import numpy as np
import pytest

from minidistil.data.tokenizer import WordPieceTokenizer
from minidistil.io.pretrained import PretrainedError, load_pretrained, save_pretrained
from minidistil.io.safetensors import SafetensorsError, load_file
from minidistil.models import Bert, BertConfig

SECONDS = float(os.environ.get("MINIDISTIL_FUZZ_SECONDS", "2"))
SEED = int(os.environ.get("MINIDISTIL_FUZZ_SEED", str(int(time.time()) % 100000)))
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_corpus")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + [f"w{i}" for i in range(11)]  # 16 tokens


def _folder(path):
    model = Bert(BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=16, max_position_embeddings=8),
                 dtype=np.float32, seed=0)
    save_pretrained(model, WordPieceTokenizer(VOCAB), path)
    return path


def _mutate(raw: bytes, rng) -> bytes:
    b = bytearray(raw)
    kind = rng.integers(5)
    if kind == 0 and len(b):  # flip a few bytes, biased towards the 8-byte length and the header
        for _ in range(rng.integers(1, 5)):
            pos = rng.integers(min(len(b), 400)) if rng.random() < 0.7 else rng.integers(len(b))
            b[pos] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncate
        b = b[: rng.integers(len(b) + 1)]
    elif kind == 2:  # splice random bytes in
        pos = rng.integers(len(b) + 1)
        b[pos:pos] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
    elif kind == 3:  # replace a digit run inside the header by a huge or odd number
        text = bytes(b)
        n = int.from_bytes(text[:8], "little") if len(text) >= 8 else 0
        header = text[8:8 + n]
        digits = [i for i, c in enumerate(header) if 48 <= c <= 57]
        if digits:
            i = 8 + digits[rng.integers(len(digits))]
            big = str(int(rng.choice([0, 2 ** 31, 2 ** 32, 2 ** 62, 2 ** 63, 2 ** 64, 10 ** 30]))).encode()
            b[i:i + 1] = big
            new_n = n + len(big) - 1
            b[:8] = new_n.to_bytes(8, "little")
    else:  # the 8-byte header length itself
        b[:8] = int(rng.integers(0, 2 ** 63, dtype=np.int64)).to_bytes(8, "little")
    return bytes(b)


def _outcome(folder):
    """Load the folder; None on success, the exception type name when it is a documented error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_pretrained(folder)
        except (SafetensorsError, PretrainedError) as e:
            return type(e).__name__
    return None


def _run_for(seconds, seed, target, tmp_path):
    rng = np.random.default_rng(seed)
    good = _folder(tmp_path / "good")
    originals = {name: (good / name).read_bytes() for name in ("model.safetensors", "config.json", "vocab.txt")}
    work = tmp_path / "work"
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline or n < 20:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(good, work)
        name = target if target else ("model.safetensors", "config.json", "vocab.txt")[rng.integers(3)]
        mutated = _mutate(originals[name], rng)
        (work / name).write_bytes(mutated)
        try:
            if name == "model.safetensors":
                try:
                    load_file(work / name, copy=True)
                except SafetensorsError:
                    pass
            _outcome(work)
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            keep = os.path.join(str(tmp_path), f"failing-{seed}-{n}-{name}")
            with open(keep, "wb") as f:
                f.write(mutated)
            raise AssertionError(f"{type(e).__name__}: {e} for a mutated {name} (seed {seed}, case {n}; "
                                 f"the file is kept at {keep})") from e
        n += 1
    return n


@pytest.mark.parametrize("target", ["model.safetensors", None])
def test_mutated_folders_load_or_raise_documented_errors(tmp_path, target):
    n = _run_for(SECONDS, SEED + (0 if target else 1), target, tmp_path)
    assert n >= 20


@pytest.mark.parametrize("name", sorted(os.listdir(CORPUS)) if os.path.isdir(CORPUS) else [])
def test_corpus_of_found_cases(tmp_path, name):
    """Each file replaces the model.safetensors of a valid folder. ``<case>.SafetensorsError.*``:
    the reader refuses it, and load_pretrained reports that as a PretrainedError."""
    folder = _folder(tmp_path / "f")
    shutil.copy(os.path.join(CORPUS, name), folder / "model.safetensors")
    assert name.split(".")[-2] == "SafetensorsError"
    with pytest.raises(SafetensorsError):
        load_file(folder / "model.safetensors")
    assert _outcome(folder) == "PretrainedError"


def test_non_finite_weights_are_rejected_naming_the_tensor_unless_allowed(tmp_path):
    from minidistil.io.safetensors import save_file
    folder = _folder(tmp_path / "f")
    tensors = load_file(folder / "model.safetensors", copy=True)
    name = sorted(tensors)[3]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(PretrainedError, match=f"tensor '.*' holds 1 NaN/inf"):
        load_pretrained(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = load_pretrained(folder, allow_nonfinite=True)
    assert not all(np.all(np.isfinite(v)) for v in model.params.values())
