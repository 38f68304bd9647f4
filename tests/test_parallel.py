"""Data parallelism without MPI: shards simulated in one process, launcher detection, errors.

The real 2-rank runs are in tests/test_mpi.py; these need no mpi4py.
"""
import sys

import numpy as np
import pytest

from minidistil.data.batches import pad_batch
from minidistil.losses import DistillLossConfig
from minidistil.models import Bert, BertConfig, DistilBert
from minidistil.parallel import SingleProcess, Shard, launched_by_mpiexec, params_hash, share
from minidistil.train.distill import make_distill_step
from minidistil.train.pretrain import make_mlm_step
from minidistil.train.runs import DistillStageConfig, StageConfig

V = 40


class Tok:
    vocab_size, pad_id, unk_id, cls_id, sep_id, mask_id = V, 0, 1, 2, 3, 4
    special_ids = [0, 1, 2, 3, 4]


def batch(n=7, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [np.array([2] + list(rng.integers(5, V, size=int(rng.integers(10, 18)))) + [3]) for _ in range(n)]
    return pad_batch(seqs, 0)  # (n, T) ids, attention mask


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(1)
    teacher = Bert(BertConfig.tiny(vocab_size=V), dtype=np.float64, seed=0)
    for a in teacher.params.values():
        a += 0.2 * rng.standard_normal(a.shape)
    student = DistilBert.from_teacher(teacher)
    for a in student.params.values():
        a += 0.05 * rng.standard_normal(a.shape)
    return teacher, student


def steps(models, kind):
    teacher, student = models
    if kind == "mlm":
        return lambda shard: make_mlm_step(teacher, Tok, StageConfig(), shard=shard)
    ce = "masked" if kind == "distill_ce_masked" else "all"
    return lambda shard: make_distill_step(student, teacher, Tok, DistillStageConfig(loss=DistillLossConfig(ce_positions=ce)), shard=shard)


def summed_over_shards(make, n_ranks, ids, attn, seed=3):
    losses, grads = {}, {}
    for r in range(n_ranks):
        out = make(Shard(r, n_ranks))(ids, attn, np.random.default_rng(seed))  # the same mask everywhere
        for k, v in out[0].items():
            losses[k] = losses.get(k, 0.0) + v
        for k, g in out[1].items():
            grads[k] = grads.get(k, 0.0) + g  # a new array: the model may reuse its buffers
    return losses, grads


def rel(got, want):
    total = np.sqrt(sum(float((w ** 2).sum()) for w in want.values()))
    return np.sqrt(sum(float(((got[k] - w) ** 2).sum()) for k, w in want.items())) / total


@pytest.mark.parametrize("kind", ["mlm", "distill", "distill_ce_masked"])
@pytest.mark.parametrize("n_ranks", [2, 3, 8])  # 8 ranks on 7 rows: one rank has no row at all
def test_shards_sum_to_the_whole_batch_float64(models, kind, n_ranks):
    ids, attn = batch()
    make = steps(models, kind)
    losses, grads = make(None)(ids, attn, np.random.default_rng(3))
    grads = {k: g.copy() for k, g in grads.items()}
    got_l, got_g = summed_over_shards(make, n_ranks, ids, attn)
    assert got_l.keys() == losses.keys()
    for k, v in losses.items():
        assert abs(got_l[k] - v) <= 1e-12 * abs(v), (k, got_l[k], v)
    assert rel(got_g, grads) < 1e-12


def test_unweighted_shard_means_would_be_wrong(models):
    """The negative control: averaging the ranks' own means (no token-count weights) is NOT the
    batch's loss when the ranks hold different numbers of masked tokens."""
    from minidistil.masking import mask_tokens
    teacher, _ = models
    ids, attn = batch()
    step = make_mlm_step(teacher, Tok, StageConfig())
    for seed in range(20):  # a mask that gives the two halves different numbers of targets
        _, labels = mask_tokens(ids, attn, np.random.default_rng(seed), V, 4, Tok.special_ids)
        counts = [int((labels[Shard(r, 2).rows(7)] != -100).sum()) for r in range(2)]
        if counts[0] != counts[1]:
            break
    assert counts[0] != counts[1]
    full, _ = step(ids, attn, np.random.default_rng(seed))
    weighted, _ = summed_over_shards(steps(models, "mlm"), 2, ids, attn, seed=seed)
    own = []  # each rank's mean over its own masked tokens, from its weighted contribution
    for r in range(2):
        part, _ = make_mlm_step(teacher, Tok, StageConfig(), shard=Shard(r, 2))(
            ids, attn, np.random.default_rng(seed))
        own.append(part["loss"] / share(counts[r], sum(counts)))
    naive = 0.5 * (own[0] + own[1])
    assert abs(weighted["loss"] - full["loss"]) < 1e-12 * full["loss"]
    assert abs(naive - full["loss"]) > 1e-6 * full["loss"]


def test_shard_rows_partition_and_trim():
    assert [Shard(r, 3).rows(7) for r in range(3)] == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert Shard(3, 4).rows(2) == slice(1, 2) and Shard(0, 4).rows(2) == slice(0, 0)
    attn = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    ids = np.arange(12).reshape(3, 4)
    a, i = Shard(0, 2).take(attn, ids)
    assert a.shape == (1, 2) and i.tolist() == [[0, 1]]
    a, i = Shard(1, 2).take(attn, ids)
    assert a.shape == (2, 4)
    with pytest.raises(ValueError):
        share(3, 2)


def test_launcher_detection_and_single_process_default():
    assert launched_by_mpiexec({}) == 0
    assert launched_by_mpiexec({"PMI_SIZE": "4"}) == 4
    assert launched_by_mpiexec({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    c = SingleProcess()
    assert c.is_root and c.size == 1 and c.shard is None and c.grad_buffer({}) is None


def test_params_hash_sees_one_bit():
    p = {"a": np.ones(5, np.float32), "b": np.zeros((2, 3))}
    h = params_hash(p)
    p["a"][2] = np.nextafter(np.float32(1), np.float32(2))
    assert params_hash(p) != h


@pytest.fixture
def no_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` now raises ImportError


def test_mpi_flag_without_mpi4py_is_one_line_saying_what_to_install(no_mpi4py, tmp_path, capsys):
    from minidistil.cli import main
    assert main(["pretrain", "--quick", "--mpi", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--mpi" in err and "pip install 'minidistil[mpi]'" in err
    assert not (tmp_path / "r").exists()


def test_mpiexec_without_mpi4py_is_an_error_not_n_separate_runs(no_mpi4py, monkeypatch, tmp_path, capsys):
    from minidistil.cli import main
    monkeypatch.setenv("PMI_SIZE", "2")
    assert main(["distill", "--quick", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "started by mpiexec with 2 processes" in err and "minidistil[mpi]" in err
