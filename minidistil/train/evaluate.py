"""Evaluation on the validation split, and the paper's Table 3 beside ours.

The evaluation mask is drawn once from a fixed seed (``EvalConfig.eval_seed``), so every model
(teacher, student, each ablation) is scored on exactly the same masked tokens. Reported:

* masked-token top-1 accuracy, MLM loss (mean cross-entropy at masked tokens) and perplexity;
* teacher-student top-1 agreement at the masked tokens;
* a unigram-frequency baseline: always predict the most frequent training token (its accuracy),
  and the cross-entropy of the add-one-smoothed unigram distribution (its loss);
* parameter counts and inference time per batch, teacher and student timed in the same process,
  interleaved, best of ``timing_repeats`` passes (the machine is shared: the minimum is the
  least disturbed figure). Inference = embeddings + encoder + MLM head at the masked positions,
  which is what a masked-token prediction needs.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from .runs import Data, EvalConfig

# reference.md: Table 3 (STS-B dev, CPU, batch 1) and Table 1 (GLUE macro)
PAPER = {
    "teacher_name": "BERT-base", "student_name": "DistilBERT",
    "teacher_layers": 12, "student_layers": 6,
    "teacher_params": 110e6, "student_params": 66e6,
    "teacher_time_s": 668.0, "student_time_s": 410.0,
    "teacher_glue": 79.5, "student_glue": 77.0,
}


class EvalBatch(NamedTuple):
    input_ids: np.ndarray       # (B, T) with the evaluation mask applied
    attention_mask: np.ndarray  # (B, T)
    positions: np.ndarray       # (B, T) bool, the masked tokens
    labels: np.ndarray          # (P,) original ids at the masked tokens


def make_eval_set(val_seqs, tokenizer, cfg: EvalConfig, mlm_prob: float = 0.15) -> list[EvalBatch]:
    """The validation batches with one fixed mask (same for every model and every run)."""
    from ..data.batches import eval_batches
    from ..masking import IGNORE_INDEX, mask_tokens
    mask_rng = np.random.default_rng(cfg.eval_seed)
    out = []
    for ids, attn in eval_batches(val_seqs, cfg.batch_size, tokenizer.pad_id):
        masked, labels = mask_tokens(ids, attn, mask_rng, tokenizer.vocab_size, tokenizer.mask_id,
                                     tokenizer.special_ids, mlm_prob=mlm_prob)
        pos = labels != IGNORE_INDEX  # (B, T)
        if pos.any():
            out.append(EvalBatch(masked, attn, pos, labels[pos]))
    if not out:
        raise ValueError("the validation split has no maskable tokens")
    return out


def predict(model, evalset: list[EvalBatch]) -> dict:
    """Top-1 predictions, accuracy, MLM loss and perplexity of ``model`` on ``evalset``."""
    from ..losses import mlm_forward
    preds, correct, loss_sum, n = [], 0, 0.0, 0
    for b in evalset:
        out = model.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
        p = out.logits.argmax(axis=-1)  # (P,)
        preds.append(p)
        correct += int((p == b.labels).sum())
        loss, _ = mlm_forward(out.logits, b.labels)
        loss_sum += float(loss) * len(b.labels)
        n += len(b.labels)
    loss = loss_sum / n
    return {"accuracy": correct / n, "mlm_loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "n_masked": n, "preds": np.concatenate(preds)}


def unigram_baseline(counts: np.ndarray, special_ids, evalset: list[EvalBatch]) -> dict:
    """Always predict the most frequent (non-special) training token; unigram cross-entropy."""
    c = counts.astype(np.float64).copy()  # (V,)
    c[list(special_ids)] = 0.0
    top = int(c.argmax())
    probs = (c + 1.0) / (c.sum() + len(c))  # (V,) add-one smoothing
    labels = np.concatenate([b.labels for b in evalset])  # (N,)
    loss = float(-np.log(probs[labels]).mean())
    return {"accuracy": float((labels == top).mean()), "mlm_loss": loss,
            "perplexity": math.exp(loss), "token_id": top}


def time_inference(models: dict, evalset: list[EvalBatch], repeats: int = 3) -> dict:
    """Seconds per batch for each model: best of ``repeats`` full passes, models interleaved."""
    for m in models.values():  # warm-up (Numba compilation, caches)
        b = evalset[0]
        m.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
    best = {k: float("inf") for k in models}
    for _ in range(max(1, repeats)):
        for name, m in models.items():
            t0 = time.perf_counter()
            for b in evalset:
                m.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {k: v / len(evalset) for k, v in best.items()}


def evaluate_models(teacher, student, data: Data, cfg: EvalConfig, timing: bool = True) -> dict:
    """Everything ``minidistil evaluate`` reports, as a JSON-able dict."""
    evalset = make_eval_set(data.val, data.tokenizer, cfg)
    t = predict(teacher, evalset)
    report = {"n_val_sequences": len(data.val), "n_masked": t["n_masked"],
              "batch_size": cfg.batch_size,
              "unigram": unigram_baseline(data.counts, data.tokenizer.special_ids, evalset),
              "teacher": {k: v for k, v in t.items() if k != "preds"}}
    report["teacher"].update(layers=teacher.config.num_hidden_layers,
                             parameters=int(teacher.num_parameters()))
    if student is not None:
        s = predict(student, evalset)
        report["student"] = {k: v for k, v in s.items() if k != "preds"}
        report["student"].update(layers=student.config.num_hidden_layers,
                                 parameters=int(student.num_parameters()))
        report["agreement"] = float((t["preds"] == s["preds"]).mean())
        report["retention"] = s["accuracy"] / t["accuracy"] if t["accuracy"] > 0 else float("nan")
    if timing:
        models = {"teacher": teacher} if student is None else {"teacher": teacher, "student": student}
        times = time_inference(models, evalset, cfg.timing_repeats)
        for k, v in times.items():
            report[k]["time_per_batch_s"] = v
        if student is not None:
            report["speedup"] = times["teacher"] / times["student"]
    return report


# ---------------------------------------------------------------- the printed comparison

def _m(n):
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def format_table(report: dict) -> str:
    """Table 3 of the paper in miniature: ours (teacher/student) beside the paper's figures."""
    t, s, P = report["teacher"], report.get("student"), PAPER
    rows = [("", "teacher", "student", f"paper {P['teacher_name']}", f"paper {P['student_name']}")]
    rows.append(("layers", str(t["layers"]), str(s["layers"]) if s else "-",
                 str(P["teacher_layers"]), str(P["student_layers"])))
    rows.append(("parameters", _m(t["parameters"]), _m(s["parameters"]) if s else "-",
                 "110M", "66M"))
    if s:
        rows.append(("size vs teacher", "100%", f"{100 * s['parameters'] / t['parameters']:.0f}%",
                     "100%", f"{100 * 66 / 110:.0f}%"))
    if "time_per_batch_s" in t:
        rows.append((f"inference / batch of {report['batch_size']}",
                     f"{1e3 * t['time_per_batch_s']:.1f} ms",
                     f"{1e3 * s['time_per_batch_s']:.1f} ms" if s else "-",
                     "668 s (STS-B)", "410 s"))
        if s:
            rows.append(("speed-up", "1.00x", f"{report['speedup']:.2f}x", "1.00x",
                         f"{P['teacher_time_s'] / P['student_time_s']:.2f}x"))
    rows.append(("val masked-token acc", f"{100 * t['accuracy']:.2f}%",
                 f"{100 * s['accuracy']:.2f}%" if s else "-", "79.5 (GLUE)", "77.0 (GLUE)"))
    if s:
        rows.append(("retention", "100%", f"{100 * report['retention']:.1f}%", "100%",
                     f"{100 * P['student_glue'] / P['teacher_glue']:.1f}%"))
    rows.append(("val MLM perplexity", f"{t['perplexity']:.1f}",
                 f"{s['perplexity']:.1f}" if s else "-", "-", "-"))
    if s:
        rows.append(("teacher-student agreement", "", f"{100 * report['agreement']:.1f}%", "-", "-"))
    u = report["unigram"]
    rows.append(("unigram baseline acc / ppl", f"{100 * u['accuracy']:.2f}% / {u['perplexity']:.0f}",
                 "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    note = (f"(validation: {report['n_val_sequences']} sequences, {report['n_masked']} masked tokens, "
            "one fixed mask; paper: GLUE dev macro-score and a full STS-B dev pass at batch 1)")
    return "\n".join(lines + [note])


def format_targets(report: dict) -> str:
    """The demo's targets, each with the measured figure and PASS/MISS."""
    t, s, u = report["teacher"], report.get("student"), report["unigram"]
    lines = []

    def line(ok, text):
        lines.append(f"  [{'PASS' if ok else 'MISS'}] {text}")
    line(t["accuracy"] > u["accuracy"] + 0.02,
         f"teacher beats the unigram baseline: {100 * t['accuracy']:.2f}% vs {100 * u['accuracy']:.2f}%")
    if s:
        line(report["retention"] >= 0.97, f"student retains >= 97% of the teacher's accuracy: "
                                          f"{100 * report['retention']:.1f}%")
        if "speedup" in report:
            line(report["speedup"] >= 1.6, f"student inference >= 1.6x faster: {report['speedup']:.2f}x")
    return "targets:\n" + "\n".join(lines)
