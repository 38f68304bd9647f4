"""The defaults the help text states are the defaults the code uses.

The command line's parser stays light (no NumPy or Numba at ``--help``), so its help strings
spell the loss and fine-tuning defaults out; this test holds them to the one place each is
declared: ``DistillLossConfig``, ``FinetuneConfig`` and ``GlueConfig``.
"""
import re

from minidistil.cli_parser import build_parser
from minidistil.losses import DistillLossConfig
from minidistil.train.finetune import FinetuneConfig
from minidistil.train.glue import GlueConfig


def _help_default(command: str, flag: str) -> float:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    action = next(a for a in sub._actions if flag in a.option_strings)
    assert action.default is None, f"{command} {flag}: the default must come from the config, not argparse"
    found = re.search(r"default (\d+(?:\.\d+)?(?:e-?\d+)?)", action.help)
    assert found, f"{command} {flag}: its help names no default: {action.help!r}"
    return float(found.group(1))


def test_distill_help_states_the_loss_config_defaults():
    cfg = DistillLossConfig()
    assert _help_default("distill", "--alpha-ce") == cfg.alpha_ce
    assert _help_default("distill", "--alpha-mlm") == cfg.alpha_mlm
    assert _help_default("distill", "--alpha-cos") == cfg.alpha_cos
    assert _help_default("distill", "--temperature") == cfg.temperature


def test_glue_help_states_the_finetune_defaults():
    ft = FinetuneConfig()
    assert _help_default("glue", "--alpha") == GlueConfig.alpha_soft
    assert _help_default("glue", "--temperature") == ft.temperature
    assert _help_default("glue", "--epochs") == ft.epochs
    assert _help_default("glue", "--lr") == ft.lr
    assert _help_default("glue", "--batch-size") == ft.batch_size
