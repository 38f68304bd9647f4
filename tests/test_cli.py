"""Bad command-line input: one line on stderr, exit code 2, nothing written."""

import pytest

from minidistil.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0]
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("argv, words", [
    (["pretrain", "--seed", "abc"], ["--seed", "integer"]),
    (["pretrain", "--seed=-3"], ["--seed", ">= 0"]),
    (["pretrain", "--steps", "0"], ["--steps", ">= 1"]),
    (["distill", "--lr", "nan"], ["--lr", "finite"]),
    (["distill", "--lr=-1e-3"], ["--lr", "> 0"]),
    (["distill", "--temperature", "0"], ["--temperature"]),
    (["ablate", "--seeds", "1.5"], ["--seeds", "integer"]),
    (["demo", "--no-such-option"], ["unrecognized"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_bad_numbers_and_options(argv, words, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(argv + ["--out", str(out)], capsys)
    assert_one_line_error(code, err, *words)
    assert not out.exists()


def test_missing_corpus(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["pretrain", "--quick", "--corpus", str(tmp_path / "nope.txt"), "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--corpus", "no such file")
    assert not out.exists()


def test_out_under_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    code, _, err = run(["pretrain", "--quick", "--out", str(f / "run")], capsys)
    assert_one_line_error(code, err, "--out")
    code, _, err = run(["pretrain", "--quick", "--out", str(f)], capsys)
    assert_one_line_error(code, err, "--out", "not a folder")
    assert f.read_text() == "x"


def test_missing_teacher_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["distill", "--quick", "--teacher", str(tmp_path / "none"), "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--teacher")
    assert not out.exists()


def test_distill_without_teacher(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["distill", "--quick", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "no teacher")
    assert not out.exists()


def test_resume_with_nothing_to_resume(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(["pretrain", "--quick", "--resume", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--resume")
    assert not out.exists()


def test_help_lists_commands(capsys):
    code, out, _ = run([], capsys)
    assert code == 0
    for cmd in ("demo", "pretrain", "distill", "evaluate", "ablate", "bench"):
        assert cmd in out


@pytest.mark.parametrize("content, words", [
    (b"", []),
    (b"\x00\x01\x02\xff\xfe binary \x00" * 50, []),
    (b"Just one short sentence.\n", []),
])
def test_unusable_corpus(content, words, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(content)
    out = tmp_path / "run"
    code, _, err = run(["pretrain", "--quick", "--corpus", str(corpus), "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--corpus", *words)
    assert not out.exists()


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "pretrain").mkdir(parents=True)
    (out / "pretrain" / "checkpoint.npz").write_bytes(b"keep me")
    code, _, err = run(["pretrain", "--quick", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--resume")
    assert (out / "pretrain" / "checkpoint.npz").read_bytes() == b"keep me"


def test_loss_settings_live_in_one_config(tmp_path):
    from minidistil.cli import UsageError, build_parser
    from minidistil.cli_checks import resolve_config as _config
    from minidistil.losses import DistillLossConfig
    from minidistil.train.runs import RunConfig, quick_config
    out = ["--out", str(tmp_path / "run")]
    cfg, _ = _config(build_parser().parse_args(["distill", "--alpha-ce", "0", "--temperature", "4"] + out))
    assert isinstance(cfg.distill.loss, DistillLossConfig)
    assert cfg.distill.loss == DistillLossConfig(alpha_ce=0.0, temperature=4.0)
    with pytest.raises(UsageError, match="at least one of alpha_ce"):
        _config(build_parser().parse_args(["distill", "--alpha-ce", "0", "--alpha-mlm", "0", "--alpha-cos", "0"] + out))
    # a run directory written with the flat keys of before still loads
    d = quick_config().to_dict()
    loss = d["distill"].pop("loss")
    d["distill"].update(loss, alpha_cos=0.5)
    assert RunConfig.from_dict(d).distill.loss == DistillLossConfig(**dict(loss, alpha_cos=0.5))


def test_demo_and_ablate_with_an_unusable_teacher_folder(tmp_path, capsys):
    """Not a BERT folder: one line naming the teacher, nothing written."""
    folder = tmp_path / "not_a_teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for cmd in ("demo", "ablate"):
        out = tmp_path / f"run_{cmd}"
        code, _, err = run([cmd, "--teacher", str(folder), "--out", str(out)], capsys)
        assert_one_line_error(code, err, "teacher")
        assert not out.exists()


def test_only_rank_0_probes_the_out_folder(tmp_path, monkeypatch):
    """Under mpiexec every rank checks its inputs, but rank 0 alone writes the run. When every rank
    probed --out (made the folder, wrote a file, removed what it had made), rank 0 could remove the
    folder while rank 1 was writing its probe into it: "cannot write there (No such file or
    directory)". Another rank now checks the path and touches nothing."""
    import os
    import types

    from minidistil.cli_checks import check_inputs
    from minidistil.cli_parser import build_parser
    out = tmp_path / "new" / "run"
    args = build_parser().parse_args(["pretrain", "--out", str(out)])
    touched = []
    real_makedirs = os.makedirs
    monkeypatch.setattr(os, "makedirs", lambda p, *a, **k: (touched.append(p), real_makedirs(p, *a, **k)))
    args.comm = types.SimpleNamespace(is_root=False, size=2, rank=1)
    check_inputs(args)
    assert touched == [] and not (tmp_path / "new").exists()
    args.comm = types.SimpleNamespace(is_root=True, size=2, rank=0)
    check_inputs(args)  # rank 0 probes, and leaves nothing behind
    assert touched and not (tmp_path / "new").exists()
