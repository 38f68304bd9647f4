"""The command line without traps: export, --version, python -m, --out defaults, resume from the
run's own config.json, one-line file-system errors, umask-respecting files, clean help text.
Run directories are built by hand (config.json, vocab.txt, model.npz), so no training runs here."""
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pytest

from minidistil import Bert, BertConfig, DistilBert, WordPieceTokenizer, load_pretrained
from minidistil.atomic import atomic_write_text
from minidistil.cli import build_parser, main
from minidistil.cli_config import read_saved
from minidistil.train.runs import quick_config, save_config, save_model

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + ["the", "cat", "sat", "##s"] + [f"w{i}" for i in range(31)]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    for w in words:
        assert w in lines[0], lines[0]


def _run_dir(tmp_path, stages=("pretrain",), cfg=None):
    out = tmp_path / "run"
    out.mkdir()
    save_config(str(out), cfg or quick_config())
    (out / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))
    teacher = Bert(BertConfig.tiny(vocab_size=len(VOCAB)), seed=3)
    models = {"pretrain": teacher, "distill": DistilBert.from_teacher(teacher)}
    for stage in stages:
        (out / stage).mkdir()
        save_model(str(out / stage / "model.npz"), models[stage])
    return out, models


def test_export_the_teacher_and_the_student(tmp_path, capsys):
    out, models = _run_dir(tmp_path, ("pretrain", "distill"))
    for argv, kind in (([str(out / "pretrain")], "pretrain"), ([str(out)], "distill"),
                       ([str(out), "--stage", "pretrain"], "pretrain")):
        to = tmp_path / f"hf-{len(argv)}-{kind}"
        code, text, err = run(["export", *argv, "--to", str(to)], capsys)
        assert code == 0, err
        assert str(to) in text
        with pytest.warns(UserWarning) if kind == "pretrain" else _nothing():
            model, tok = load_pretrained(to)
        assert type(model) is type(models[kind]) and tok.vocab == VOCAB
        for k, v in models[kind].params.items():
            if k in model.params and "pooler" not in k:
                np.testing.assert_array_equal(model.params[k], v)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_export_errors_are_one_line(tmp_path, capsys):
    out, _ = _run_dir(tmp_path)
    code, _, err = run(["export", str(out), "--to", str(tmp_path / "x")], capsys)
    one_line_error(code, err, "no stage to export", "distill")
    code, _, err = run(["export", str(tmp_path / "nope"), "--to", str(tmp_path / "x")], capsys)
    one_line_error(code, err, "not a folder")
    code, _, err = run(["export", str(out / "pretrain"), "--stage", "distill", "--to", "x"], capsys)
    one_line_error(code, err, "--stage distill")
    (tmp_path / "afile").write_text("x")
    code, _, err = run(["export", str(out / "pretrain"), "--to", str(tmp_path / "afile")], capsys)
    one_line_error(code, err, "not a folder")


def test_version_and_python_dash_m(capsys):
    import minidistil
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"minidistil {minidistil.__version__}"
    res = subprocess.run([sys.executable, "-m", "minidistil", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == f"minidistil {minidistil.__version__}"


def test_every_flag_has_plain_help():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sp in subs.items():
        if name == "bench":
            continue
        for action in sp._actions:
            if action.dest in ("help",):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            assert not re.search(r"``|:[a-z]+:`|\.\. [a-z]+::", action.help), action.help  # no reST
        assert "``" not in (sp.description or "") + (sp.epilog or "")
    assert "``" not in (parser.description or "") + (parser.epilog or "")


def test_quick_runs_default_to_their_own_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["pretrain", "--quick", "--resume"], capsys)
    one_line_error(code, err, os.path.join("runs", "demo-quick", "pretrain"))
    code, _, err = run(["pretrain", "--resume"], capsys)
    one_line_error(code, err, os.path.join("runs", "demo", "pretrain"))
    assert not (tmp_path / "runs").exists()  # the probe of --out leaves nothing behind


def test_resume_refuses_contradicting_flags(tmp_path, capsys):
    out, _ = _run_dir(tmp_path, ())
    (out / "pretrain").mkdir()
    (out / "pretrain" / "checkpoint.npz").write_bytes(b"")  # a partial stage (contents not read here)
    saved = quick_config()
    for flags, words in ((["--steps", "999"], ["--steps 999", f"steps {saved.pretrain.steps}"]),
                         (["--batch-size", "7"], ["--batch-size 7", f"batch_size {saved.pretrain.batch_size}"]),
                         (["--seed", "4"], ["--seed 4", "seed 0"]),
                         (["--lr", "0.1"], ["--lr 0.1", f"lr {saved.pretrain.lr}"])):
        code, _, err = run(["pretrain", "--out", str(out), "--resume", *flags], capsys)
        one_line_error(code, err, *words, "config.json")
    parser = build_parser()
    from minidistil.cli_checks import resolve_config as _config
    args = parser.parse_args(["pretrain", "--out", str(out), "--resume"])  # no --quick: read from the run
    cfg, _ = _config(args)
    assert cfg == saved
    args = parser.parse_args(["pretrain", "--out", str(out), "--resume", "--quick", "--steps",
                              str(saved.pretrain.steps)])  # the same values are fine
    assert _config(args)[0] == saved


def test_a_later_stage_takes_the_stored_settings(tmp_path):
    out, _ = _run_dir(tmp_path)
    from minidistil.cli_checks import resolve_config as _config
    args = build_parser().parse_args(["distill", "--out", str(out), "--steps", "7"])
    cfg, saved = _config(args)
    assert cfg.model == saved.model == quick_config().model and cfg.distill.steps == 7
    assert cfg.distill.batch_size == quick_config().distill.batch_size  # not the demo preset's


def _teacher_folder(tmp_path):
    teacher = Bert(BertConfig.tiny(vocab_size=len(VOCAB)), seed=5)
    return teacher.save_pretrained(tmp_path / "teacher", tokenizer=WordPieceTokenizer(VOCAB))


def test_teacher_into_a_run_with_its_own_teacher_is_refused(tmp_path, capsys):
    out, _ = _run_dir(tmp_path)
    folder = _teacher_folder(tmp_path)
    code, _, err = run(["distill", "--teacher", str(folder), "--out", str(out)], capsys)
    one_line_error(code, err, "own pretrained teacher", "another --out")
    other = tmp_path / "other"
    other.mkdir()
    (other / "vocab.txt").write_text("".join(t + "\n" for t in SPECIALS + ["zz"]))
    save_config(str(other), quick_config())
    code, _, err = run(["distill", "--teacher", str(folder), "--out", str(other)], capsys)
    warned = [line for line in err.splitlines() if ": warning: " in line]  # the teacher has no pooler
    assert len(warned) == 1 and "pooler" in warned[0]  # a library warning: one clean line
    one_line_error(code, "\n".join(line for line in err.splitlines() if line not in warned), "another vocabulary")


def test_teacher_resume_with_the_same_options_is_accepted(tmp_path):
    from minidistil.cli_checks import load_teacher as _teacher, resolve_config as _config
    from minidistil.cli_config import check_after_teacher, save
    folder = _teacher_folder(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    argv = ["distill", "--quick", "--teacher", str(folder), "--out", str(out)]
    args = build_parser().parse_args(argv)
    cfg, saved = _config(args)
    assert saved is None
    _, _, cfg = _teacher(args, cfg)
    save(str(out), cfg, args.teacher)  # what the first run writes
    for extra in ([], ["--teacher", str(folder)]):  # the teacher comes from config.json if not given
        args = build_parser().parse_args(["distill", "--quick", "--out", str(out), "--resume"] + extra)
        cfg2, saved = _config(args)
        assert args.teacher == str(folder.resolve())
        _, _, cfg2 = _teacher(args, cfg2)
        check_after_teacher(args, cfg2, saved)  # no error: compared after the teacher's adjustments
        assert cfg2 == read_saved(str(out))[0]


def test_file_system_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(["pretrain", "--quick", "--out", ""], capsys)
    one_line_error(code, err, "--out", "empty")
    code, _, err = run(["pretrain", "--quick", "--out", "/proc/minidistil-test/run"], capsys)
    one_line_error(code, err, "--out", "cannot write")
    (tmp_path / "f").write_text("x")
    code, _, err = run(["pretrain", "--quick", "--out", str(tmp_path / "f")], capsys)
    one_line_error(code, err, "not a folder")


def test_oserror_during_a_command_is_one_line(tmp_path, capsys, monkeypatch):
    import minidistil.cli as cli

    def full_disk(args):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "checkpoint.npz"))
    monkeypatch.setattr(cli, "_cmd", full_disk)
    code, _, err = run(["pretrain", "--quick", "--out", str(tmp_path / "run")], capsys)
    one_line_error(code, err, "No space left on device", "checkpoint.npz")


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "f.txt", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.txt").st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_results_table_fits_80_columns():
    from minidistil.train.evaluate import format_table
    base = {"n_val_sequences": 512, "n_masked": 12345, "batch_size": 32,
            "teacher": {"layers": 12, "parameters": 109_514_298, "accuracy": 0.5123, "se": 0.0031,
                        "perplexity": 123.4, "time_per_batch_s": 1.2345},
            "student": {"layers": 6, "parameters": 66_985_530, "accuracy": 0.4987, "se": 0.0032,
                        "perplexity": 150.2, "time_per_batch_s": 0.6543},
            "agreement": 0.81, "retention": 0.973, "retention_ci95": [0.961, 0.985], "speedup": 1.89,
            "unigram": {"accuracy": 0.0393, "perplexity": 1312.0}}
    headless = {"teacher_has_mlm_head": False, "n_val_sequences": 512, "batch_size": 32,
                "teacher": base["teacher"], "student": base["student"], "speedup": 1.89,
                "hidden_cosine": {"mean": 0.912, "se": 0.004}, "embedding_cosine": {"mean": 0.97, "se": 0.002}}
    for report in (base, headless):
        text = format_table(report)
        assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "acc" not in format_table(headless).split("(")[0] and "retention" not in format_table(headless)
    assert "hidden-state cosine" in format_table(headless)


def test_resume_refuses_a_contradicting_preset(tmp_path, capsys):
    from minidistil.train.runs import PRESETS
    out, _ = _run_dir(tmp_path, ())
    (out / "pretrain").mkdir()
    (out / "pretrain" / "checkpoint.npz").write_bytes(b"")  # a partial stage (contents not read here)
    code, _, err = run(["pretrain", "--out", str(out), "--resume", "--preset", "teacher"], capsys)
    one_line_error(code, err, "--preset teacher", "config.json", "max_docs 300", "the preset has None")
    other = tmp_path / "teacher-run"  # made with --preset teacher: demo differs only in its stages
    (other / "pretrain").mkdir(parents=True)
    (other / "pretrain" / "checkpoint.npz").write_bytes(b"")
    save_config(str(other), PRESETS["teacher"](0))
    code, _, err = run(["pretrain", "--out", str(other), "--resume", "--preset", "demo"], capsys)
    demo, teacher = PRESETS["demo"](0).pretrain, PRESETS["teacher"](0).pretrain
    one_line_error(code, err, "--preset demo", f"pretrain ckpt_every {teacher.ckpt_every}",
                   f"the preset has {demo.ckpt_every}")
    from minidistil.cli_checks import resolve_config as _config
    args = build_parser().parse_args(["pretrain", "--out", str(other), "--resume", "--preset", "teacher"])
    assert _config(args)[0] == PRESETS["teacher"](0)  # the run's own preset is fine


def test_demo_resume_from_a_teacher_takes_the_stored_student_settings(tmp_path, capsys):
    """demo (from a teacher folder) --resume: the stored --distill-steps, not the default, and
    one line naming both values for a contradicting flag."""
    import dataclasses
    from minidistil.cli_checks import merge_saved_config as _merge_saved_config
    from minidistil.train import demo
    from minidistil.train.runs import load_config
    folder = _teacher_folder(tmp_path)
    teacher, tok = demo.load_teacher_folder(folder)
    out = tmp_path / "run"
    cfg = demo.teacher_run_config(folder, teacher, tok, seed=2, steps=7)
    demo.write_teacher_run(str(out), cfg, type("D", (), {"tokenizer": tok})(), teacher,
                           source=str(folder.resolve()))
    import shutil
    twin = shutil.copytree(folder, tmp_path / "same-architecture")  # another teacher folder
    for flags, words in ((["--distill-steps", "9"], ["--distill-steps 9", "distill steps 7"]),
                         (["--seed", "4"], ["--seed 4", "seed 2"]),
                         (["--teacher", str(twin)], [f"--teacher {twin}", str(folder.resolve())])):
        code, _, err = run(["demo", "--out", str(out), "--resume", "--no-fast", *flags], capsys)
        one_line_error(code, "\n".join(x for x in err.splitlines() if ": warning: " not in x),
                       *words, "--resume continues")
    args = build_parser().parse_args(["demo", "--out", str(out), "--resume"])
    args.teacher = None
    default = demo.teacher_run_config(folder, teacher, tok)  # what a demo without flags would use
    merged, _ = _merge_saved_config(args, default)
    assert merged == load_config(str(out)) and merged.distill.steps == 7 != default.distill.steps
    assert merged.seed == 2
    assert dataclasses.replace(merged, seed=0) != default  # not the fresh defaults


def test_evaluate_without_training_writes_no_empty_loss_panel(tmp_path):
    """evaluate --teacher on a fresh --out (a BertModel checkpoint, say): comparison.png only."""
    from minidistil.train.plots import plot_run
    report = {"teacher_has_mlm_head": False, "n_val_sequences": 6, "batch_size": 32,
              "teacher": {"layers": 6, "parameters": 22_890_000, "time_per_batch_s": 0.5},
              "student": None}
    paths = plot_run(str(tmp_path), report)
    assert [os.path.basename(p) for p in paths] == ["comparison.png"]
    assert not (tmp_path / "plots" / "losses.png").exists()
    assert (tmp_path / "plots" / "comparison.png").stat().st_size > 1000


def test_evaluate_keeps_the_runs_own_evaluation_settings(tmp_path, capsys):
    """`evaluate --out RUN` re-scores RUN on its own masks (the demo's 42, say), not the preset's,
    and leaves config.json's evaluation as it was; before, it took the preset's and rewrote it."""
    import dataclasses
    from minidistil.train.runs import EvalConfig, load_config
    own = EvalConfig(batch_size=4, n_masks=3, eval_seed=99, timing_repeats=1)
    out, _ = _run_dir(tmp_path, ("pretrain", "distill"), cfg=dataclasses.replace(quick_config(), eval=own))
    assert own != quick_config().eval
    from minidistil.cli_checks import resolve_config as _config
    cfg, _ = _config(build_parser().parse_args(["evaluate", "--out", str(out)]))
    assert cfg.eval == own
    code, _, err = run(["evaluate", "--out", str(out), "--no-progress"], capsys)
    assert code == 0, err
    assert load_config(str(out)).eval == own
    import json
    report = json.loads((out / "eval.json").read_text())
    assert report["n_masks"] == own.n_masks
