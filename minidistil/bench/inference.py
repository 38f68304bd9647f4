"""Inference at batch 1 and sequence length 128 (the setting of the paper's Table 3, one sequence
at a time): the teacher's and the student's forward pass, no backward, in minidistil and in
PyTorch eager, each framework in its own fresh interpreter.

Legend: B batch (1 here), T sequence, C hidden, V vocabulary.

* **minidistil**: the teacher ``Bert`` and the student ``DistilBert`` built at the sweep's shape
  as bench/steps.py builds them (``build_models``, float32, the fast layer on unless
  ``--no-fast``), run as a user runs inference: ``forward(ids, mask, mlm_positions=<all False>,
  keep_cache=False)``. With no MLM positions the V-wide head runs on zero rows, so this is the
  encoder (embeddings, blocks; the teacher's pooler on its one [CLS] row) and no vocabulary head,
  as the sequence classifiers of models/heads.py call it.
* **PyTorch eager**: bench/torch_peer.py's ``MaskedLM.encode`` (embeddings and blocks, no head,
  no pooler) under ``torch.no_grad()`` with the models in ``eval()`` mode.

Each figure is the median of ``repeats`` forwards after ``warmup`` untimed ones (bench/measure.py's
``measure``), on one random sequence of T ids without padding. The student's speed-up is
teacher median / student median (the paper reports 1.63x for 12 -> 6 layers; the bench shapes
halve the layers too, 6 -> 3 or 2 -> 1). Each ratio has a 95% bootstrap interval (the two
samples resampled independently, the ratio of their medians, percentiles 2.5 and 97.5).
"""
from __future__ import annotations

import json

import numpy as np

from .format import table
from . import measure as measure_mod
from .measure import atomic_write, measure, rss_mb
from .shapes import BenchShapes, preset

PAPER_SPEEDUP = 1.63  # DistilBERT over BERT-base, inference (Sanh et al. 2019, Table 3)
SEQ = 128
REPEATS = 30
WARMUP = 3
MODELS = ("teacher", "student")

_CHILD = """
import json, sys
from minidistil.bench.inference import child
child(json.loads(sys.argv[1]), sys.argv[2])
"""


def infer_shape(s: BenchShapes, seq: int = SEQ) -> BenchShapes:
    """The sweep shape ``s`` at batch 1 and sequence length ``seq`` (widths, vocabulary, layers kept)."""
    return s.replace(batch=1, seq=seq)


def _ids(s: BenchShapes, seed: int = 0) -> np.ndarray:
    """One ``[CLS] random ids [SEP]`` row (1, T) of int64 (ids 0-4 are the special ones)."""
    ids = np.random.default_rng(seed).integers(5, s.vocab, size=(s.batch, s.seq)).astype(np.int64)  # (1, T)
    ids[:, 0], ids[:, -1] = 2, 3
    return ids


def time_minidistil(s: BenchShapes, repeats: int, warmup: int, threads: int, use_fast: bool = True) -> dict:
    """Teacher and student forward at ``s`` (already batch 1): ``measure`` dicts by model."""
    from .. import fast
    from ..kernels.backend import set_num_threads
    from .steps import build_models
    if use_fast:
        fast.enable()
    set_num_threads(threads)
    models = dict(zip(MODELS, build_models(s)))
    ids = _ids(s)  # (1, T)
    attn = np.ones_like(ids)  # (1, T)
    no_mlm = np.zeros(ids.shape, dtype=bool)  # (1, T): no position gets vocabulary logits
    out = {}
    for name, m in models.items():
        out[name] = measure(lambda m=m: m.forward(ids, attn, mlm_positions=no_mlm, keep_cache=False),
                            repeats, max(1, warmup))
    return out


def time_torch(s: BenchShapes, repeats: int, warmup: int, threads: int) -> dict:
    """The same two forwards in PyTorch eager (``MaskedLM.encode`` under ``no_grad``)."""
    import torch
    from .torch_peer import MaskedLM
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    models = {"teacher": MaskedLM(s, s.teacher_layers, token_types=True).eval(),
              "student": MaskedLM(s, s.student_layers, token_types=False).eval()}
    ids = torch.from_numpy(_ids(s))  # (1, T)
    mask = torch.ones_like(ids)  # (1, T)
    out = {"torch_version": torch.__version__}
    with torch.no_grad():
        for name, m in models.items():
            out[name] = measure(lambda m=m: m.encode(ids, mask), repeats, max(1, warmup))
    return out


def child(payload: dict, out_path: str) -> None:
    """One framework at one shape, in a fresh interpreter (see ``_CHILD``)."""
    s = infer_shape(preset(payload["shape"]), payload["seq"])
    args = (s, payload["repeats"], payload["warmup"], payload["threads"])
    if payload["framework"] == "torch":
        res = time_torch(*args)
    else:
        res = time_minidistil(*args, use_fast=payload["fast"])
    res["memory"] = rss_mb()
    atomic_write(out_path, json.dumps(res))


def ratio_ci(a, b, n_boot: int = 2000, seed: int = 0) -> tuple:
    """95% percentile-bootstrap interval of median(a) / median(b), the samples resampled apart."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)  # (na,), (nb,)
    rng = np.random.default_rng(seed)
    ra = np.median(rng.choice(a, size=(n_boot, a.size)), axis=1)  # (n_boot,)
    rb = np.median(rng.choice(b, size=(n_boot, b.size)), axis=1)  # (n_boot,)
    lo, hi = np.percentile(ra / rb, [2.5, 97.5])
    return float(lo), float(hi)


def _ratio(a: dict | None, b: dict | None):
    if not a or not b or "median_s" not in a or "median_s" not in b:
        return None, None
    return a["median_s"] / b["median_s"], ratio_ci(a["times_s"], b["times_s"])


def assemble_row(name: str, seq: int, md: dict, tor: dict | None, torch_error: str | None = None) -> dict:
    """One shape's inference row from the two children's results (``tor`` None: not measured)."""
    row = {"shape": name, "batch": 1, "seq": seq, "paper_speedup": PAPER_SPEEDUP, "torch_error": torch_error}
    for m in MODELS:
        row[f"{m}_ms"] = md[m]["median_s"] * 1e3
        row[f"{m}_times_s"] = md[m]["times_s"]
        t = (tor or {}).get(m)
        row[f"torch_{m}_ms"] = t["median_s"] * 1e3 if t else None
        row[f"torch_{m}_times_s"] = t["times_s"] if t else None
        row[f"{m}_vs_torch"], row[f"{m}_vs_torch_95ci"] = _ratio(md[m], t)
    row["student_speedup"], row["student_speedup_95ci"] = _ratio(md["teacher"], md["student"])
    row["cpu_over_wall"] = {m: md[m]["cpu_over_wall"] for m in MODELS}
    return row


def run_inference(names: list, repeats: int = REPEATS, warmup: int = WARMUP, threads: int = 2,
                  use_fast: bool = True, with_torch: bool = True, timeout: float = 1800, log=print,
                  seq: int = SEQ) -> list:
    """Every shape's row: each framework's forwards in its own child process."""
    import subprocess
    rows = []
    for name in names:
        payload = {"shape": name, "seq": seq, "repeats": repeats, "warmup": warmup, "threads": threads,
                   "fast": use_fast}
        log(f"[sweep] {name}: inference, batch 1 x T={seq}, minidistil ...")
        md = measure_mod.run_script(_CHILD, [json.dumps({**payload, "framework": "minidistil"})], threads, timeout)
        tor, err = None, None
        if with_torch:
            log(f"[sweep] {name}: inference, batch 1 x T={seq}, PyTorch eager ...")
            try:
                tor = measure_mod.run_script(_CHILD, [json.dumps({**payload, "framework": "torch"})], threads, timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                err = measure_mod.script_failure(e, "PyTorch eager child", timeout)
        rows.append(assemble_row(name, seq, md, tor, err))
    return rows


def _ci(r, ci) -> str:
    return "-" if r is None else f"{r:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def inference_lines(rows: list, repeats: int | None = None) -> list:
    """The printed table: per shape, ms of each model, the speed-up, the ratios to PyTorch."""
    if not rows:
        return []
    T = rows[0]["seq"]
    L = [f"Inference at batch 1 x T={T}, forward only, no vocabulary head; median of "
         f"{repeats if repeats else '?'} forwards per model; [95% bootstrap interval]; target: "
         "minidistil / PyTorch eager <= 0.5.", ""]
    L += table(["shape", "teacher", "student", "student speed-up (paper 1.63x)", "PyTorch teacher",
                "PyTorch student", "teacher / PyTorch", "student / PyTorch"],
               [[x["shape"], f"{x['teacher_ms']:.2f} ms", f"{x['student_ms']:.2f} ms",
                 _ci(x["student_speedup"], x["student_speedup_95ci"]),
                 "-" if x["torch_teacher_ms"] is None else f"{x['torch_teacher_ms']:.2f} ms",
                 "-" if x["torch_student_ms"] is None else f"{x['torch_student_ms']:.2f} ms",
                 _ci(x["teacher_vs_torch"], x["teacher_vs_torch_95ci"]),
                 _ci(x["student_vs_torch"], x["student_vs_torch_95ci"])] for x in rows])
    L += [f"PyTorch eager failed at {x['shape']}: {x['torch_error']}" for x in rows if x.get("torch_error")]
    return L
