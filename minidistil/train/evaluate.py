"""Evaluation on the validation split, and the paper's Table 3 beside ours.

The evaluation (eval_set.py) masks every validation sequence ``EvalConfig.n_masks`` times with
fixed seeds (from ``eval_seed``; eval_masks.py: each round of 7 masks covers every token), so every model
(teacher, student, controls, each ablation) is scored on exactly the same masked tokens, and
there are several times more of them than one mask gives. Each masked token remembers the
validation sequence it came from: the standard errors (``intervals.py``) treat a sequence as one
sampling unit, and paired differences of two models are taken on the same tokens. Reported:

* masked-token top-1 accuracy with its standard error, MLM loss (mean cross-entropy at masked
  tokens) and perplexity;
* teacher-student top-1 agreement at the masked tokens, and retention (student accuracy over
  teacher accuracy) with its delta-method standard error;
* a unigram-frequency baseline: always predict the most frequent training token (its accuracy),
  and the cross-entropy of the add-one-smoothed unigram distribution (its loss);
* parameter counts and inference time per batch, teacher and student timed in the same process,
  each batch for both models back to back, best of ``timing_repeats`` passes (the machine is
  shared: the minimum is the least disturbed figure). The speed-up is the geometric mean of the
  paired per-batch ratios, with a 95% t-interval over those pairs (``intervals.paired_ratio``).
  Inference = embeddings + encoder + MLM head at the masked positions, which is what a
  masked-token prediction needs. Timing uses the batches of the first mask.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import intervals
from .eval_set import (EvalBatch, EvalSet, MASK_GROUP, cluster_masked, make_eval_set,  # noqa: F401
                       predict, prediction_result)  # (re-exported: scoring one model lives there)
from .eval_subsets import first_masks, predict_nested
from .runs import Data, EvalConfig

# reference.md: Table 3 (STS-B dev, CPU, batch 1) and Table 1 (GLUE macro)
PAPER = {
    "teacher_name": "BERT-base", "student_name": "DistilBERT",
    "teacher_layers": 12, "student_layers": 6,
    "teacher_params": 110e6, "student_params": 66e6,
    "teacher_time_s": 668.0, "student_time_s": 410.0,
    "teacher_glue": 79.5, "student_glue": 77.0,
}


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
    """Seconds per batch for each model: best of ``repeats`` full passes, models interleaved.

    Each batch is timed for every model back to back, so a slow moment of a shared machine
    hits the models of one batch alike. ``times_per_batch(...)`` gives the raw samples.
    """
    return best_pass_per_batch(times_per_batch(models, evalset, repeats))


def best_pass_per_batch(samples: dict) -> dict:
    """``{model: seconds per batch}`` of the fastest pass of ``times_per_batch``'s samples."""
    return {k: float(v.sum(axis=1).min()) / v.shape[1] for k, v in samples.items()}  # v (R, nb)


def times_per_batch(models: dict, evalset: list[EvalBatch], repeats: int = 3) -> dict:
    """``{model: (repeats, n_batches) seconds}``: every batch timed for every model back to back."""
    for m in models.values():  # warm-up: Numba compilation, caches, and each shape's first call
        for b in evalset:  # (the speed layer times a product's routes on its first call)
            m.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
    out = {k: np.zeros((max(1, repeats), len(evalset))) for k in models}  # each (R, nb)
    for r in range(max(1, repeats)):
        for j, b in enumerate(evalset):
            for name, m in models.items():
                t0 = time.perf_counter()
                m.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
                out[name][r, j] = time.perf_counter() - t0
    return out


def _mean_se(x) -> dict:
    x = np.asarray(x, dtype=np.float64)  # (N,)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {"mean": float(x.mean()), "se": se, "n": int(len(x))}


def hidden_agreement(teacher, student, val_seqs, pad_id: int, batch_size: int) -> dict:
    """How close the student's last hidden states are to the teacher's, on unmasked held-out text.

    ``hidden_cosine``: cosine of the two last hidden states per real token (what Lcos trains),
    mean over tokens; ``embedding_cosine``: cosine of the mean-pooled sentence embeddings per
    held-out sequence (as sentence-embedding models such as all-MiniLM-L6-v2 are used). Each with
    its standard error over tokens / sequences.
    """
    from ..data.batches import eval_batches
    tok_cos, sent_cos = [], []
    for ids, attn in eval_batches(val_seqs, batch_size, pad_id):
        none = np.zeros(ids.shape, dtype=bool)  # (B, T) no MLM positions: the V-wide head is skipped
        t = teacher.forward(ids, attn, mlm_positions=none, keep_cache=False).hidden_states[-1]  # (B, T, C)
        s = student.forward(ids, attn, mlm_positions=none, keep_cache=False).hidden_states[-1]  # (B, T, C)
        real = attn.astype(bool)  # (B, T)
        num = (t * s).sum(-1)  # (B, T)
        den = np.linalg.norm(t, axis=-1) * np.linalg.norm(s, axis=-1) + 1e-12  # (B, T)
        tok_cos.append((num / den)[real])
        w = attn[..., None].astype(t.dtype)  # (B, T, 1)
        te, se = (t * w).sum(1), (s * w).sum(1)  # (B, C) mean pooling (the count cancels in the cosine)
        sent_cos.append((te * se).sum(-1) / (np.linalg.norm(te, axis=-1) * np.linalg.norm(se, axis=-1) + 1e-12))
    return {"hidden_cosine": _mean_se(np.concatenate(tok_cos)),
            "embedding_cosine": _mean_se(np.concatenate(sent_cos))}


def _scores(model, res: dict) -> dict:
    out = {k: v for k, v in res.items() if k not in ("preds", "cluster_correct")}
    out["ci95"] = list(intervals.ci95(res["accuracy"], res["se"]))
    out.update(layers=model.config.num_hidden_layers, parameters=int(model.num_parameters()))
    return out


def compare(res_a: dict, res_b: dict, masked: np.ndarray) -> dict:
    """The paired difference ``a - b`` of two :func:`predict` results on the same evaluation."""
    d, se = intervals.paired_difference(res_a["cluster_correct"], res_b["cluster_correct"], masked)
    return {"diff": d, "se": se, "ci95": list(intervals.ci95(d, se)),
            "z": d / se if se > 0 else float("nan")}


def retention_of(res_s: dict, res_t: dict) -> dict:
    r, se = intervals.retention(res_s["cluster_correct"], res_t["cluster_correct"])
    return {"value": r, "se": se, "ci95": list(intervals.ci95(r, se)), "method": "delta"}


def evaluate_models(teacher, student, data: Data, cfg: EvalConfig, timing: bool = True,
                    controls: dict | None = None, gain_against: str | None = None,
                    evalset: EvalSet | None = None) -> dict:
    """Everything ``minidistil evaluate`` reports, as a JSON-able dict.

    ``controls`` {name: student model} are scored on the same tokens; each gets its retention
    and its paired difference against ``student``. ``gain_against`` names the control whose
    paired difference ``student - control`` is reported as ``report["gain"]``.

    A teacher whose MLM head was made up on load (``teacher.fresh_parts`` names it) has no
    masked-token accuracy: the report then holds the hidden-state agreement of
    :func:`hidden_agreement` instead (``report["teacher_has_mlm_head"]`` is False).
    """
    if "MLM head" in getattr(teacher, "fresh_parts", ()):
        # a BertModel checkpoint (e.g. all-MiniLM-L6-v2): no masked-token accuracy to report
        return _evaluate_headless(teacher, student, data, cfg, timing)
    evalset = make_eval_set(data.val, data.tokenizer, cfg) if evalset is None else evalset
    masked = cluster_masked(evalset)
    k = getattr(cfg, "control_masks", 0)
    coarse = [n for n in (controls or {}) if n != gain_against] if 0 < k < evalset.n_masks else []
    if coarse:  # eval_subsets.py: those controls on the first k masks, against the same tokens
        head = first_masks(evalset, k)[0]
        masked_head = cluster_masked(head)
        t, t_head = predict_nested(teacher, evalset, k)
    else:
        t, t_head = predict(teacher, evalset), None
    report = {"n_val_sequences": len(data.val), "n_masked": t["n_masked"],
              "n_masks": evalset.n_masks, "batch_size": cfg.batch_size,
              "interval": "95% = estimate +/- 1.96 se; se clustered by validation sequence",
              "unigram": unigram_baseline(data.counts, data.tokenizer.special_ids, evalset),
              "teacher": _scores(teacher, t)}
    if coarse:
        report["control_masks"] = {"n_masks": k, "n_masked": t_head["n_masked"], "controls": coarse}
    s = s_head = None
    if student is not None:
        s, s_head = predict_nested(student, evalset, k) if coarse else (predict(student, evalset), None)
        report["student"] = _scores(student, s)
        report["agreement"] = float((t["preds"] == s["preds"]).mean())
        ret = retention_of(s, t)
        report["retention"], report["retention_se"] = ret["value"], ret["se"]
        report["retention_ci95"] = ret["ci95"]
        report["student_minus_teacher"] = compare(s, t, masked)
    if controls:
        report["controls"] = {}
        for name, model in controls.items():
            few = name in coarse
            c = predict(model, head if few else evalset)
            row = _scores(model, c)
            row["retention"] = retention_of(c, t_head if few else t)
            if s is not None:
                row["student_minus_this"] = compare(s_head if few else s, c, masked_head if few else masked)
            report["controls"][name] = row
            if name == gain_against and s is not None:
                report["gain"] = dict(row["student_minus_this"], against=name)
    if timing:
        _add_timing(report, teacher, student, [b for b in evalset if b.mask_index == 0], cfg.timing_repeats)
    return report


def _evaluate_headless(teacher, student, data: Data, cfg: EvalConfig, timing: bool) -> dict:
    report = {"teacher_has_mlm_head": False, "n_val_sequences": len(data.val), "batch_size": cfg.batch_size,
              "teacher": {"layers": teacher.config.num_hidden_layers, "parameters": int(teacher.num_parameters())}}
    if student is not None:
        report["student"] = {"layers": student.config.num_hidden_layers,
                             "parameters": int(student.num_parameters())}
        report.update(hidden_agreement(teacher, student, data.val, data.tokenizer.pad_id, cfg.batch_size))
    if timing:  # one mask is enough to time a forward pass per batch
        _add_timing(report, teacher, student, make_eval_set(data.val, data.tokenizer, cfg, n_masks=1),
                    cfg.timing_repeats)
    return report


def _add_timing(report: dict, teacher, student, batches, repeats: int) -> None:
    """``report[model]["time_per_batch_s"]`` for teacher (and student), ``report["speedup"]``.

    ``time_per_batch_s``: the best of ``repeats`` passes over the batches. ``speedup``: the
    geometric mean of the teacher/student time ratios of each batch timed back to back, with
    ``speedup_ci95`` (a 95% t-interval over those pairs) when there are at least two.
    """
    models = {"teacher": teacher} if student is None else {"teacher": teacher, "student": student}
    samples = times_per_batch(models, batches, repeats)  # each (R, nb)
    for k, v in best_pass_per_batch(samples).items():
        report[k]["time_per_batch_s"] = v
    if student is not None:
        t, s = samples["teacher"].ravel(), samples["student"].ravel()  # (R * nb,) paired
        if t.size >= 2 and np.all(t > 0) and np.all(s > 0):  # (a clock too coarse gives zeros)
            pr = intervals.paired_ratio(t, s)
            report["speedup"], report["speedup_ci95"] = pr["ratio"], pr["ci95"]
            report["speedup_pairs"] = pr["n"]
        else:
            report["speedup"] = float(t.sum() / s.sum()) if s.sum() > 0 else float("nan")


# ---------------------------------------------------------------- the printed comparison

def _m(n):
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def _pm(d: dict) -> str:
    return f"{d['mean']:.3f} +/- {d['se']:.3f}"


def format_table(report: dict) -> str:
    """Table 3 of the paper in miniature: ours (teacher/student) beside the paper's figures.

    At most 80 columns wide. A teacher without an MLM head gets hidden-state agreement rows
    instead of the accuracy rows it cannot support.
    """
    import textwrap
    t, s, P = report["teacher"], report.get("student"), PAPER
    headed = report.get("teacher_has_mlm_head", True)
    rows = [("", "teacher", "student", f"{P['teacher_name']}*", f"{P['student_name']}*")]
    rows.append(("layers", str(t["layers"]), str(s["layers"]) if s else "-",
                 str(P["teacher_layers"]), str(P["student_layers"])))
    rows.append(("parameters", _m(t["parameters"]), _m(s["parameters"]) if s else "-",
                 "110M", "66M"))
    if s:
        rows.append(("size vs teacher", "100%", f"{100 * s['parameters'] / t['parameters']:.0f}%",
                     "100%", f"{100 * 66 / 110:.0f}%"))
    if "time_per_batch_s" in t:
        rows.append((f"inference, batch {report['batch_size']}",
                     f"{1e3 * t['time_per_batch_s']:.1f} ms",
                     f"{1e3 * s['time_per_batch_s']:.1f} ms" if s else "-",
                     "668 s", "410 s"))
        if s:
            ci = report.get("speedup_ci95")
            sp = f"{report['speedup']:.2f}x" + (f" {intervals.fmt_ci(ci, scale=1.0, signed=False)}" if ci else "")
            rows.append(("speed-up, 95% CI" if ci else "speed-up", "1.00x", sp, "1.00x",
                         f"{P['teacher_time_s'] / P['student_time_s']:.2f}x"))
    if headed:
        pm = lambda m: intervals.fmt_pm(m["accuracy"], m["se"]).replace(" +/- ", "+/-")  # 80 columns
        rows.append(("masked-token acc %", pm(t), pm(s) if s else "-", "79.5", "77.0"))
        if s:
            ci = report.get("retention_ci95")
            ret = f"{100 * report['retention']:.1f}%" + (
                f" {intervals.fmt_ci(ci, digits=1, signed=False)}" if ci else "")
            rows.append(("retention, 95% CI", "100%", ret, "100%",
                         f"{100 * P['student_glue'] / P['teacher_glue']:.1f}%"))
        rows.append(("val MLM perplexity", f"{t['perplexity']:.1f}",
                     f"{s['perplexity']:.1f}" if s else "-", "-", "-"))
        if s:
            rows.append(("top-1 agreement", "", f"{100 * report['agreement']:.1f}%", "-", "-"))
        u = report["unigram"]
        rows.append(("unigram acc / ppl", f"{100 * u['accuracy']:.2f}% / {u['perplexity']:.0f}",
                     "", "", ""))
    elif s:
        rows.append(("hidden-state cosine", "1", _pm(report["hidden_cosine"]), "-", "-"))
        rows.append(("embedding cosine", "1", _pm(report["embedding_cosine"]), "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    if headed:
        note = (f"(validation: {report['n_val_sequences']} sequences, {report['n_masked']} masked tokens, "
                f"{report.get('n_masks', 1)} fixed mask(s); +/- one se, clustered by sequence. "
                "* the paper: GLUE dev macro-score for accuracy and retention, a full "
                "STS-B dev pass at batch 1 for time)")
    else:
        note = (f"(the teacher has no MLM head, so no accuracy: cosines of the student's last hidden "
                f"states to the teacher's on {report['n_val_sequences']} unmasked validation sequences, "
                "per token and of the mean-pooled sentence embeddings, mean +/- standard error. "
                "* the paper: a full STS-B dev pass at batch 1 for time)")
    return "\n".join(lines + [textwrap.fill(note, 80)])


def _speedup_text(report: dict) -> str:
    """The speed-up target's line: the figure, its interval, and whether 1.6x lies inside it."""
    text = f"student inference >= 1.6x faster: {report['speedup']:.2f}x"
    ci = report.get("speedup_ci95")
    if ci:
        text += f" (95% CI {intervals.fmt_ci(ci, scale=1.0, signed=False)}"
        text += ", not resolved from 1.6x)" if ci[0] < 1.6 <= ci[1] else ")"
    return text


def format_targets(report: dict) -> str:
    """The demo's targets, each with the measured figure and PASS/MISS."""
    t, s, u = report["teacher"], report.get("student"), report.get("unigram")
    lines = []

    def line(ok, text):
        lines.append(f"  [{'PASS' if ok else 'MISS'}] {text}")
    if u is None:  # a teacher without an MLM head: only the speed target applies
        if s and "speedup" in report:
            line(report["speedup"] >= 1.6, _speedup_text(report))
        return "targets:\n" + "\n".join(lines) if lines else "targets: none apply"
    line(t["accuracy"] > u["accuracy"] + 0.02,
         f"teacher beats the unigram baseline: {100 * t['accuracy']:.2f}% vs {100 * u['accuracy']:.2f}%")
    if s:
        ci = report.get("retention_ci95")
        ci_txt = f" (95% CI {intervals.fmt_ci(ci, digits=1, signed=False)})" if ci else ""
        line(report["retention"] >= 0.97, f"student retains >= 97% of the teacher's accuracy: "
                                          f"{100 * report['retention']:.1f}%{ci_txt}")
    g = report.get("gain")
    if g:
        line(g["z"] >= 3, f"distilled beats {g['against']} by >= 3 se of the paired difference: "
                          f"{100 * g['diff']:+.2f} points, se {100 * g['se']:.2f} ({g['z']:.1f} se)")
        line(g["se"] <= 0.0015, f"paired standard error <= 0.15 points: {100 * g['se']:.3f}")
        if "speedup" in report:
            line(report["speedup"] >= 1.6, _speedup_text(report))
    return "targets:\n" + "\n".join(lines)
