"""Outside set 1: 78 realistic wrong backward passes and 5 correct controls for the exercises.

Provenance: written on 2026-12-01 by a separate session of the project, from the exercise stubs
and docs/math.md, without reading ``problems*.py`` or ``hints.py``. That writer did see the
table of hint keys in docs/exercises.md, so the set is only PARTLY blind. Its writer listed the
20 entries whose mistake is not one of that table's named formulas:
linear_dweight_mean, gelu_erf_chain, ln_var_term_sum, ln_stats_constant, ln_inplace_center,
sm_sum_dp, sm_inplace, lsm_p_without_T, lsm_softmax_formula, att_scale_HS,
att_softmax_sum_wrong_axis, att_dk_no_scale, ce_sign, ce_inplace_shift, kl_reversed,
cos_norm_power, tri_cos_label_mask, blk_gelu_phi, blk_v_only, blk_ln2_at_h.
Its own self-check (not copied) found every mistake wrong against central differences on three
cases and every control correct. The code below is the writer's, split at the exercise banners
into files of under 400 lines; nothing else changed. ``tests/test_outside_mistakes.py`` measures
the checker on it; docs/exercises.md reports the figures.
"""

from .common import MISTAKES
from . import part_a, part_b, part_c  # noqa: E402,F401 - each part appends to MISTAKES
