"""Checkpoints: exact round trip, metadata, generator states, no pickle, atomic writes."""
import os
import zipfile

import numpy as np
import pytest

from minidistil.train.checkpoint import (load_checkpoint, rng_from_state, rng_state,
                                         save_checkpoint)


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"model/bert.embeddings.word_embeddings.weight": rng.normal(size=(5, 3)).astype(np.float32),
              "optim/t": np.array(7, dtype=np.int64),
              "ids": np.arange(4)}
    meta = {"step": 7, "config": {"hidden_size": 8}, "note": "ü"}
    path = tmp_path / "ckpt.npz"
    save_checkpoint(str(path), arrays, meta)
    got, got_meta = load_checkpoint(str(path))
    assert got.keys() == arrays.keys()
    for k in arrays:
        assert got[k].dtype == arrays[k].dtype and np.array_equal(got[k], arrays[k])
    assert got_meta == meta
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temp file left behind


def test_file_holds_no_pickle(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"a": np.ones(3)}, {"x": 1})
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as f:
                header = f.read(128)
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header
    with np.load(path, allow_pickle=False) as z:  # loads without pickle
        assert set(z.files) == {"a", "__meta__"}
    with pytest.raises(TypeError, match="pickle"):
        save_checkpoint(str(path), {"bad": np.array([{"a": 1}], dtype=object)})


def test_generator_state_resumes_the_same_stream(tmp_path):
    rng = np.random.default_rng(123)
    rng.normal(size=10)
    path = tmp_path / "r.npz"
    save_checkpoint(str(path), {}, {"rng": rng_state(rng)})
    expected = rng.integers(0, 1000, size=20)
    _, meta = load_checkpoint(str(path))
    again = rng_from_state(meta["rng"]).integers(0, 1000, size=20)
    assert np.array_equal(expected, again)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"a": np.zeros(2)}, {"step": 1})

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(str(path), {"a": np.ones(2)}, {"step": 2})
    monkeypatch.undo()
    arrays, meta = load_checkpoint(str(path))
    assert meta["step"] == 1 and np.array_equal(arrays["a"], np.zeros(2))
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "missing.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(str(junk))
