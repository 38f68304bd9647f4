"""The stages of ``minidistil pretrain | distill | evaluate`` (and of ``demo --pretrain``): each
trains or loads its model, prints one summary line and tidies its stage folder."""
from __future__ import annotations

import os
import time

from ..cli_checks import say, stage_state


def run_pretrain(args, cfg, data):
    from ..train.pretrain import pretrain
    from ..train.runs import MODEL_FILE, load_model
    if stage_state(args.out, "pretrain") == "done":
        say(args, "teacher already trained: reusing " + os.path.join(args.out, "pretrain", MODEL_FILE))
        return load_model(os.path.join(args.out, "pretrain", MODEL_FILE))[0], True
    t0 = time.perf_counter()
    teacher, res = pretrain(cfg, args.out, data, resume=args.resume, comm=getattr(args, "comm", None),
                            max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    last = f", last loss {res.last_losses['loss']:.3f}" if "loss" in res.last_losses else ""
    say(args, f"pretrain: {res.step}/{cfg.pretrain.steps} steps in {time.perf_counter() - t0:.1f} s{last}")
    finish_stage(args, "pretrain", res.finished)
    return teacher, res.finished


def finish_stage(args, stage, finished, model=None, tokenizer=None):
    """A finished stage: drop the resume checkpoint (model.npz stays); the student's HF folder."""
    from ..train.loop import CKPT_FILE
    if not finished:
        return
    ckpt = os.path.join(args.out, stage, CKPT_FILE)
    if not args.keep_checkpoints and os.path.isfile(ckpt):
        os.unlink(ckpt)
    if model is not None:
        from ..export import HF_DIR, write_hf_folder
        folder = os.path.join(args.out, stage, HF_DIR)
        if not os.path.isfile(os.path.join(folder, "model.safetensors")):
            say(args, "Hugging Face folder: " + write_hf_folder(model, tokenizer, folder))


def run_distill(args, cfg, data, teacher):
    from ..train.distill import distill
    from ..train.runs import MODEL_FILE, load_model
    if stage_state(args.out, "distill") == "done":
        say(args, "student already trained: reusing " + os.path.join(args.out, "distill", MODEL_FILE))
        student = load_model(os.path.join(args.out, "distill", MODEL_FILE))[0]
        finish_stage(args, "distill", True, student, data.tokenizer)
        return student, True
    t0 = time.perf_counter()
    student, res = distill(cfg, args.out, data, teacher, resume=args.resume, comm=getattr(args, "comm", None),
                           max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    parts = " (" + ", ".join(f"{k} {v:.3f}" for k, v in res.last_losses.items()) + ")" if res.last_losses else ""
    say(args, f"distill: {res.step}/{cfg.distill.steps} steps in {time.perf_counter() - t0:.1f} s{parts}")
    finish_stage(args, "distill", res.finished, student, data.tokenizer)
    return student, res.finished


def run_evaluate(args, cfg, data, teacher, students: dict):
    from ..train.controls import format_claims
    from ..train.demo import evaluate_run, write_plots
    from ..train.evaluate import format_table, format_targets
    report = evaluate_run(args.out, cfg, data, teacher, students)
    paths = write_plots(args.out, report, data, cfg, teacher)
    if report.get("teacher_has_mlm_head", True):  # Table 1 compares masked-token accuracies
        print("Table 1 in miniature:")
        print(format_claims(report))
        print()
    print("Table 3 in miniature:")
    print(format_table(report))
    print(format_targets(report))
    say(args, "plots: " + ", ".join(paths))
    return report
