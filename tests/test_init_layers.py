"""Which teacher blocks a student starts from: the "bottom"/"top" rules and explicit lists, in the
model rule, the stage config, the student it makes and the command line."""
import numpy as np
import pytest

from minidistil.cli_parser import build_parser
from minidistil.models import Bert, BertConfig, student_layers
from minidistil.train.distill import init_layer_list, make_student
from minidistil.train.runs import DistillStageConfig, RunConfig, check_init_layers

V = 60


def test_top_rule_is_one_of_two_ending_at_the_last_block():
    assert student_layers(6, 3, align="top") == [1, 3, 5]
    assert student_layers(12, 6, align="top") == [1, 3, 5, 7, 9, 11]
    assert student_layers(2, 1, align="top") == [1]
    # an odd depth: one of two from the first block already ends at the last
    assert student_layers(5, 3, align="top") == student_layers(5, 3) == [0, 2, 4]
    # not half the depth: the same spread for both rules
    assert student_layers(6, 2, align="top") == student_layers(6, 2) == [0, 5]
    with pytest.raises(ValueError, match="align"):
        student_layers(6, 3, align="middle")


@pytest.mark.parametrize("given, stored", [
    ("bottom", "bottom"), (" TOP ", "top"), ("1,3,5", "1,3,5"), ("0, 2 ,5", "0,2,5"), ([1, 3, 5], "1,3,5"),
])
def test_init_layers_are_stored_in_one_form(given, stored):
    assert check_init_layers(given) == stored
    assert DistillStageConfig(init_layers=given).init_layers == stored


@pytest.mark.parametrize("bad, words", [
    ("middle", "'bottom', 'top'"), ("1,,3", "comma-separated"), ("3,1", "strictly increasing"),
    ("1,1", "strictly increasing"), ("-1,2", ">= 0"), (3, "'bottom', 'top'"), (None, "'bottom', 'top'"),
])
def test_bad_init_layers_are_refused_with_what_was_wrong(bad, words):
    with pytest.raises(ValueError, match=words):
        check_init_layers(bad)


def test_an_explicit_list_must_fit_the_teacher_and_the_student():
    assert init_layer_list("0,2,5", 6, 3) == [0, 2, 5]
    assert init_layer_list("top", 6, 3) == [1, 3, 5] and init_layer_list("bottom", 6, 3) == [0, 2, 4]
    with pytest.raises(ValueError, match="names 2 teacher layers, but the student has 3"):
        init_layer_list("1,3", 6, 3)
    with pytest.raises(ValueError, match="the teacher has 6 layers, numbered 0 to 5"):
        init_layer_list("2,4,6", 6, 3)


def test_the_student_copies_the_named_blocks():
    teacher = Bert(BertConfig.tiny(vocab_size=V, num_hidden_layers=4), np.float64, seed=3)
    cfg = RunConfig()
    cfg.model.num_hidden_layers, cfg.model.student_layers = 4, 2
    for spec, want in (("bottom", [0, 2]), ("top", [1, 3]), ("0,3", [0, 3])):
        cfg.distill = DistillStageConfig(init_layers=spec)
        s = make_student(teacher, cfg)
        assert s.teacher_layers == want
        for j, i in enumerate(want):
            t_names, s_names = teacher.naming.block_names(i), s.naming.block_names(j)
            for local in s_names:
                np.testing.assert_array_equal(s.params[s_names[local]], teacher.params[t_names[local]])


def test_init_layers_round_trip_through_the_run_config():
    cfg = RunConfig()
    cfg.distill = DistillStageConfig(init_layers="top")
    assert RunConfig.from_dict(cfg.to_dict()).distill.init_layers == "top"
    d = cfg.to_dict()
    del d["distill"]["init_layers"]  # a run directory written before the field: the paper's rule
    assert RunConfig.from_dict(d).distill.init_layers == "bottom"


def test_the_command_line_flag(tmp_path, capsys):
    from minidistil.cli_checks import resolve_config
    out = ["--out", str(tmp_path / "run")]
    cfg, _ = resolve_config(build_parser().parse_args(["distill", "--init-layers", "top"] + out))
    assert cfg.distill.init_layers == "top"
    cfg, _ = resolve_config(build_parser().parse_args(["distill"] + out))
    assert cfg.distill.init_layers == "bottom"
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["distill", "--init-layers", "5,3"] + out)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--init-layers" in err and "strictly increasing" in err


def test_the_command_line_refuses_layers_that_do_not_fit_before_writing(tmp_path, capsys):
    from minidistil.cli import main
    run = tmp_path / "run"
    assert main(["pretrain", "--quick", "--steps", "2", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    for flags, words in ((["--init-layers", "0,1"], "the student has 1"),
                         (["--init-layers", "7"], "the teacher has 2 layers"),
                         (["--init", "random", "--init-layers", "top"], "--init random")):
        code = main(["distill", "--no-progress", "--out", str(run)] + flags)
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and words in err, (flags, err)
        assert not (run / "distill").exists()
