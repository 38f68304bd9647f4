"""Outside set 10, part 3 of 3 (see ``__init__.py``)."""
from . import part_a, part_b
for _m in (part_a, part_b,):
    globals().update({k: v for k, v in vars(_m).items() if not k.startswith('__')})

@add("cross_entropy", "label0_ignored", "treated label 0 (as if a pad id) as not scored too: mask labels > 0")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, ignore=lambda y: y <= 0)


@add("cross_entropy", "grad_wrt_probs", "returned -1/p at the label (gradient w.r.t. the probabilities, not the logits)")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, kind="inv_p")


# ----------------------------------------------------------------------------- cosine
def _cos(dloss, s_h, t_h, mask, use_mask=True, denom="real", sign=-1.0, var="ok", mask_bcast=True):
    m = np.asarray(mask, dtype=np.float64)
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    if var == "ok":
        g = t_h / (ns * nt) - cos * s_h / ns ** 2
    elif var == "no_norm_term":
        g = t_h / (ns * nt)
    elif var == "second_denom":
        g = t_h / (ns * nt) - cos * s_h / (ns * nt)
    elif var == "no_nt":
        g = t_h / ns - cos * s_h / ns ** 2
    n = {"real": m.sum(), "all": m.size, "one": 1.0}[denom]
    g = sign * g / n * dloss
    if use_mask:
        g = g * (m[..., None] if mask_bcast else m)
    return g


@add("cosine", "control", "correct", True)
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask)


@add("cosine", "no_mask", "did not zero the gradient at padded positions")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, use_mask=False)


@add("cosine", "denominator_all", "divided by B*T instead of the number of real positions")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, denom="all")


@add("cosine", "sign", "gradient of +cos instead of 1 - cos: sign flipped")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, sign=1.0)


@add("cosine", "norm_treated_constant", "treated |s| as a constant: dropped the -cos * s/|s|^2 term")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, var="no_norm_term")


@add("cosine", "second_term_denominator", "second term written cos * s / (|s||t|) instead of cos * s / |s|^2")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, var="second_denom")


@add("cosine", "no_upstream", "forgot to multiply by dloss")
def _(dloss, s_h, t_h, mask):
    return _cos(1.0, s_h, t_h, mask)


@add("cosine", "no_mean", "forgot to divide by the number of real positions (sum, not mean)")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, denom="one")


@add("cosine", "forgot_teacher_norm", "first term t/|s| instead of t/(|s||t|): forgot the teacher's norm")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, var="no_nt")


@add("cosine", "mask_no_newaxis", "multiplied by mask (B, T) without [..., None], so it broadcasts wrongly")
def _(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, mask_bcast=False)


# ----------------------------------------------------------------------------- triple_loss
def _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, w_order=(0, 1, 2), kl_T=True,
            ce_denom="kept", ce_zero=True, cos_on=True, cos_sign=-1.0, upstream=True, mat="ok"):
    a = [alphas[i] for i in w_order]
    a_ce, a_mlm, a_cos = a
    P = h.shape[0]
    logits = h @ weight.T
    p = _softmax(logits, T)
    q = _softmax(t_logits, T)
    dkl = (T if kl_T else 1.0) * (p - q) / P
    y = np.asarray(labels)
    keep = y != -100
    pc = _softmax(logits)
    oh = np.zeros_like(pc)
    oh[np.nonzero(keep)[0], y[keep]] = 1.0
    g = pc - oh
    if ce_zero:
        g[~keep] = 0.0
    dce = g / {"kept": keep.sum(), "P": P}[ce_denom]
    dlog = a_ce * dkl + a_mlm * dce
    dh = dlog @ weight if mat == "ok" else dlog @ weight.T
    if cos_on:
        ns = np.sqrt((h * h).sum(-1, keepdims=True))
        nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
        cos = (h * t_h).sum(-1, keepdims=True) / (ns * nt)
        dh = dh + a_cos * cos_sign * (t_h / (ns * nt) - cos * h / ns ** 2) / P
    return dh * dloss if upstream else dh


@add("triple_loss", "control", "correct", True)
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas)


@add("triple_loss", "no_alphas", "summed the three gradients without the weights alphas")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, (1.0, 1.0, 1.0))


@add("triple_loss", "no_cosine_term", "forgot the cosine loss's gradient (only went through the logits)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, cos_on=False)


@add("triple_loss", "kl_missing_T", "KL term's gradient (p - q)/P without the factor T (T^2 times 1/T)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, kl_T=False)


@add("triple_loss", "weight_T", "dh = dlogits @ weight.T: wrong transpose going back through logits = h @ weight.T")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, mat="T")


@add("triple_loss", "ce_over_P", "MLM term divided by P instead of the number of labelled rows")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, ce_denom="P")


@add("triple_loss", "no_upstream", "forgot to multiply by dloss")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, upstream=False)


@add("triple_loss", "cosine_sign", "cosine term's gradient with the wrong sign (of +cos)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, cos_sign=1.0)


@add("triple_loss", "alphas_swapped", "a_ce and a_mlm swapped (unpacked alphas in the wrong order)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, w_order=(1, 0, 2))


@add("triple_loss", "ce_ignored_not_zeroed", "MLM term: the -100 rows keep their softmax gradient")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, ce_zero=False)


# ----------------------------------------------------------------------------- hidden_mse
def _mse(dloss, s_h, t_h, weight, two=2.0, denom="all", sign=1.0, up=True, ds="ok", dw="ok"):
    e = s_h @ weight.T - t_h  # (B, T, CT)
    n = {"all": e.size, "rows": e.size // e.shape[-1]}[denom]
    de = sign * two * e / n * (dloss if up else 1.0)
    de2 = de.reshape(-1, e.shape[-1])
    s2 = s_h.reshape(-1, s_h.shape[-1])
    d_s = {"ok": lambda: de @ weight, "T": lambda: de @ weight.T, "none": lambda: de.copy()}[ds]()
    d_w = {"ok": lambda: de2.T @ s2, "T": lambda: s2.T @ de2,
           "batched": lambda: np.swapaxes(de, -1, -2) @ s_h,
           "twice": lambda: de2.T @ s2 / s2.shape[0]}[dw]()
    return d_s, d_w


@add("hidden_mse", "control", "correct", True)
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight)


@add("hidden_mse", "forgot_2", "forgot the factor 2 from the square")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, two=1.0)


@add("hidden_mse", "mean_over_rows_only", "divided by B*T (positions) instead of B*T*CT (every element)")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, denom="rows")


@add("hidden_mse", "no_upstream", "forgot to multiply by dloss")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, up=False)


@add("hidden_mse", "dweight_transposed", "dweight = s_h.T @ de, shape (CS, CT) instead of (CT, CS)")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, dw="T")


@add("hidden_mse", "ds_weight_T", "ds_h = de @ weight.T: wrong transpose back through the projection")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, ds="T")


@add("hidden_mse", "dweight_not_summed_over_batch", "dweight = de.swapaxes(-1,-2) @ s_h, batched (B, CT, CS), not summed over the batch")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, dw="batched")


@add("hidden_mse", "sign", "wrote the error as t - s W^T and forgot the minus from the inner derivative")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, sign=-1.0)


@add("hidden_mse", "no_projection_backprop", "ds_h = de: forgot to backprop through the projection (shape (B, T, CT))")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, ds="none")


@add("hidden_mse", "dweight_averaged_twice", "dweight also divided by B*T (averaged again after the mean)")
def _(dloss, s_h, t_h, weight):
    return _mse(dloss, s_h, t_h, weight, dw="twice")


# ----------------------------------------------------------------------------- encoder_block
def _lin_bw(dy, x, W, bias_axes="all"):
    d2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    db = d2.sum(0) if bias_axes == "all" else dy.sum(0)
    return dy @ W, d2.T @ x2, db


def _ln_fw(x, g, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xh = (x - mean) * rstd
    return xh * g + b, xh, rstd


def _ln_bw(dy, xh, rstd, g, mean_term=True):
    d = dy * g
    mt = d.mean(-1, keepdims=True) if mean_term else 0.0
    dx = rstd * (d - mt - xh * (d * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


def _block(dy, x, mask, p, num_heads, eps, bug=None):
    B, T, C = x.shape
    NH = num_heads
    HS = C // NH
    split = lambda a: a.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)  # noqa: E731
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(B, T, C)  # noqa: E731
    lin = lambda a, n: a @ p[n + ".weight"].T + p[n + ".bias"]  # noqa: E731
    q, k, v = split(lin(x, "q")), split(lin(x, "k")), split(lin(x, "v"))
    sc = q @ np.swapaxes(k, -1, -2) / math.sqrt(HS)
    sc = sc + np.where(np.asarray(mask).astype(bool), 0.0, np.finfo(x.dtype).min)[:, None, None, :]
    P = _softmax(sc)
    ctx = P @ v
    mctx = merge(ctx)
    a = lin(mctx, "o")
    r1 = x + a
    ln2g, ln1g = p["ln2.weight"], p["ln1.weight"]
    if bug == "ln_gammas_swapped":
        ln2g, ln1g = ln1g, ln2g
    h, xh1, rs1 = _ln_fw(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")
    gu = 0.5 * u * (1.0 + erf(u / math.sqrt(2.0)))
    f = lin(gu, "ff2")
    r2 = h + f
    _y, xh2, rs2 = _ln_fw(r2, p["ln2.weight"], p["ln2.bias"], eps)
    ba = "axis0" if bug == "bias_axis0" else "all"
    mt = bug != "ln_no_mean_term"
    G = {}
    dr2, G["ln2.weight"], G["ln2.bias"] = _ln_bw(dy, xh2, rs2, ln2g, mt)
    dgu, G["ff2.weight"], G["ff2.bias"] = _lin_bw(dr2, gu, p["ff2.weight"], ba)
    if bug == "gelu_no_product_rule":
        du = dgu * _Phi(u)
    else:
        du = dgu * (_Phi(u) + u * _phi(u))
    dh_f, G["ff1.weight"], G["ff1.bias"] = _lin_bw(du, h, p["ff1.weight"], ba)
    dh = dh_f if bug == "no_residual2" else dh_f + dr2
    dr1, G["ln1.weight"], G["ln1.bias"] = _ln_bw(dh, xh1, rs1, ln1g, mt)
    dmctx, G["o.weight"], G["o.bias"] = _lin_bw(dr1, mctx, p["o.weight"], ba)
    if bug == "merge_no_transpose":
        dctx = dmctx.reshape(B, NH, T, HS)
    else:
        dctx = split(dmctx)
    dv = np.swapaxes(P, -1, -2) @ dctx
    dP = dctx @ np.swapaxes(v, -1, -2)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))
    s = 1.0 if bug == "attn_no_scale" else 1.0 / math.sqrt(HS)
    dq = dS @ k * s
    dk = np.swapaxes(dS, -1, -2) @ q * s
    dx = np.zeros_like(x) if bug == "no_residual1" else dr1.copy()
    for name, dd in (("q", dq), ("k", dk), ("v", dv)):
        dd = merge(dd)
        dxi, G[name + ".weight"], G[name + ".bias"] = _lin_bw(dd, x, p[name + ".weight"], ba)
        if bug == "dx_only_query" and name != "q":
            continue
        dx = dx + dxi
    return dx, G


_ENC = [
    ("control", "correct", None),
    ("no_residual2", "forgot the residual h + FFN(h): dh gets only the FFN path, not LN2's output gradient", "no_residual2"),
    ("no_residual1", "forgot the residual x + Attn(x): dx gets only the q/k/v paths", "no_residual1"),
    ("attn_no_scale", "attention backward without the 1/sqrt(HS) scale", "attn_no_scale"),
    ("gelu_no_product_rule", "GELU backward dy * Phi(u): forgot the u * phi(u) term", "gelu_no_product_rule"),
    ("ln_no_mean_term", "LayerNorm backward (both LNs) without the -mean(dxhat) term", "ln_no_mean_term"),
    ("bias_axis0", "bias gradients summed over axis 0 only, shape (T, OUT) instead of (OUT,)", "bias_axis0"),
    ("merge_no_transpose", "backward of merge_heads: reshaped (B,T,C) to (B,NH,T,HS) without the transpose", "merge_no_transpose"),
    ("ln_gammas_swapped", "used ln1's gamma in LN2's backward and ln2's in LN1's", "ln_gammas_swapped"),
    ("dx_only_query", "dx sums only the query projection's input gradient, forgot the k and v branches", "dx_only_query"),
]


def _make_enc(bug):
    def fn(dy, x, mask, p, num_heads, eps=1e-12):
        return _block(dy, x, mask, p, num_heads, eps, bug)
    return fn


for _n, _w, _b in _ENC:
    E.append({"id": f"encoder_block/{_n}", "exercise": "encoder_block", "what": _w,
              "fn": _make_enc(_b), "control": _b is None})

ENTRIES = E
