"""Outside set 7, the triple loss, the hidden-state MSE and the encoder block (see ``__init__.py``)."""
from .common import ENTRIES, _Phi, _erf, _flat, _phi, _softmax, entry, math, np  # noqa: F401
from .part_a import _ln_stats
from .part_b import _cos_parts

# ============================================================================== triple_loss
def _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, *, a=None, kl_k=None,
            mlm_n=None, mlm_zero=True, cos_n=None, with_cos=True, dloss_all=True):
    a_ce, a_mlm, a_cos = alphas if a is None else a
    P = h.shape[0]
    logits = h @ weight.T
    d_kl = T / P * (_softmax(logits / T) - _softmax(t_logits / T))
    if kl_k is not None:
        d_kl = d_kl * kl_k
    keep = labels != -100
    g = _softmax(logits)
    rows = np.nonzero(keep)[0]
    g[rows, labels[rows]] -= 1
    if mlm_zero:
        g[~keep] = 0
    d_mlm = g / (keep.sum() if mlm_n is None else mlm_n)
    ns, nt, cos = _cos_parts(h, t_h)
    n_cos = P if cos_n is None else cos_n
    d_cos = -(t_h / (ns * nt) - cos * h / ns ** 2) / n_cos
    dlogits = a_ce * d_kl + a_mlm * d_mlm
    dh = dlogits @ weight
    if with_cos:
        if dloss_all:
            dh = dh + a_cos * d_cos
        else:
            return dh + dloss * a_cos * d_cos
    return dloss * dh


@entry("triple_loss", "control", "correct", control=True)
def triple_ok(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas)


@entry("triple_loss", "no_cosine", "forgot the cosine loss: only the two logit losses reach h")
def triple_m1(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, with_cos=False)


@entry("triple_loss", "dlogits_weight_T", "dh = dlogits @ weight.T: the decoder weight transposed")
def triple_m2(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    P = h.shape[0]
    logits = h @ weight.T
    d_kl = T / P * (_softmax(logits / T) - _softmax(t_logits / T))
    keep = labels != -100
    g = _softmax(logits)
    rows = np.nonzero(keep)[0]
    g[rows, labels[rows]] -= 1
    g[~keep] = 0
    d_mlm = g / keep.sum()
    ns, nt, cos = _cos_parts(h, t_h)
    d_cos = -(t_h / (ns * nt) - cos * h / ns ** 2) / P
    return dloss * ((a_ce * d_kl + a_mlm * d_mlm) @ weight.T + a_cos * d_cos)


@entry("triple_loss", "alphas_order", "unpacked alphas as (a_mlm, a_ce, a_cos): the first two weights swapped")
def triple_m3(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, a=(a_mlm, a_ce, a_cos))


@entry("triple_loss", "kl_no_T_squared", "the soft-target part without its T**2 factor")
def triple_m4(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, kl_k=1 / (T * T))


@entry("triple_loss", "mlm_divide_by_P", "the MLM part divided by all P positions, not the labelled ones")
def triple_m5(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, mlm_n=h.shape[0])


@entry("triple_loss", "no_alphas", "forgot the alphas: the three gradients added unweighted")
def triple_m6(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, a=(1.0, 1.0, 1.0))


@entry("triple_loss", "mlm_ignored_rows_kept", "the MLM part keeps the softmax at -100 rows (only the one-hot skipped)")
def triple_m7(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, mlm_zero=False)


@entry("triple_loss", "cos_mean_over_labelled", "the cosine part averaged over the labelled positions only, not all P")
def triple_m8(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas,
                   cos_n=int((labels != -100).sum()))


@entry("triple_loss", "dloss_only_on_cos", "dh = dlogits @ W + dloss * a_cos * dcos: dloss reaches only the last term")
def triple_m9(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, dloss_all=False)


# ============================================================================== hidden_mse
@entry("hidden_mse", "control", "correct", control=True)
def hmse_ok(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "no_factor_2", "forgot the 2 of the square")
def hmse_m1(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * e / e.size
    return de @ weight, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "mean_over_positions", "divided by the B*T positions instead of every element B*T*CT")
def hmse_m2(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / (e.shape[0] * e.shape[1])
    return de @ weight, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "count_student_width", "divided by B*T*CS (the student's width) instead of B*T*CT")
def hmse_m3(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / s_h.size
    return de @ weight, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "dW_transposed", "dweight = s_h^T de, the (CS, CT) layout")
def hmse_m4(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, _flat(s_h).T @ _flat(de)


@entry("hidden_mse", "ds_weight_T", "ds_h = de @ weight.T: the projection transposed")
def hmse_m5(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight.T, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "dW_batched_no_sum", "dweight = de.swapaxes(-1, -2) @ s_h: a batched (B, CT, CS) product never summed over B")
def hmse_m6(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, de.swapaxes(-1, -2) @ s_h


@entry("hidden_mse", "residual_sign", "residual written t_h - s_h W^T, so both gradients change sign")
def hmse_m7(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T
    de = dloss * 2 * e / e.size
    return de @ weight, _flat(de).T @ _flat(s_h)


@entry("hidden_mse", "dW_reshape", "dweight = de.reshape(CT, -1) @ s_h.reshape(-1, CS): reshape for a transpose")
def hmse_m8(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    CT, CS = weight.shape
    return de @ weight, de.reshape(CT, -1) @ s_h.reshape(-1, CS)


@entry("hidden_mse", "order_swapped", "returns (dweight, ds_h): the two gradients in the wrong order")
def hmse_m9(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return _flat(de).T @ _flat(s_h), de @ weight


# ============================================================================== encoder_block
def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _lin_b(dy, x, W, bias_axes=None):
    dx = dy @ W
    dW = _flat(dy).T @ _flat(x)
    db = _flat(dy).sum(0) if bias_axes is None else dy.sum(bias_axes)
    return dx, dW, db


def _ln_f(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _ln_b(dy, x, gamma, eps, variance=True):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    vt = xhat * (g * xhat).mean(-1, keepdims=True) if variance else 0.0
    dx = r * (g - g.mean(-1, keepdims=True) - vt)
    return dx, _flat(dy * xhat).sum(0), _flat(dy).sum(0)


def _block(dy, x, mask, p, num_heads, eps=1e-12, *, res_ffn=True, res_attn=True, reshape_heads=False,
           attn_scale=True, gelu_full=True, bias_axes=None, dx_assign=False, ln1_at_x=False,
           pre_ln=False):
    lin = lambda a, n: a @ p[n + ".weight"].T + p[n + ".bias"]
    B, T, C = x.shape
    q = _split(lin(x, "q"), num_heads)
    k = _split(lin(x, "k"), num_heads)
    v = _split(lin(x, "v"), num_heads)
    HS = q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    scores = scores + np.where(mask, 0.0, np.finfo(q.dtype).min)[:, None, None, :]
    probs = _softmax(scores)
    ctx = probs @ v
    m = _merge(ctx)
    a = lin(m, "o")
    r1 = x + a
    h = _ln_f(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")
    gu = 0.5 * u * (1 + _erf(u / math.sqrt(2)))
    f = lin(gu, "ff2")
    r2 = h + f
    grads = {}
    if pre_ln:
        # treats the block as pre-LN, h = x + Attn(LN1(x)), y = h + FFN(LN2(h)), on the post-LN caches
        dgu, grads["ff2.weight"], grads["ff2.bias"] = _lin_b(dy, gu, p["ff2.weight"])
        du = dgu * (_Phi(u) + u * _phi(u))
        dln2, grads["ff1.weight"], grads["ff1.bias"] = _lin_b(du, h, p["ff1.weight"])
        d, grads["ln2.weight"], grads["ln2.bias"] = _ln_b(dln2, h, p["ln2.weight"], eps)
        dh = dy + d
        dr1 = dh
    else:
        dr2, grads["ln2.weight"], grads["ln2.bias"] = _ln_b(dy, r2, p["ln2.weight"], eps)
        dgu, grads["ff2.weight"], grads["ff2.bias"] = _lin_b(dr2, gu, p["ff2.weight"], bias_axes)
        du = dgu * ((_Phi(u) + u * _phi(u)) if gelu_full else _Phi(u))
        dh2, grads["ff1.weight"], grads["ff1.bias"] = _lin_b(du, h, p["ff1.weight"], bias_axes)
        dh = dr2 + dh2 if res_ffn else dh2
        dr1, grads["ln1.weight"], grads["ln1.bias"] = _ln_b(dh, x if ln1_at_x else r1, p["ln1.weight"], eps)
    dm, grads["o.weight"], grads["o.bias"] = _lin_b(dr1, m, p["o.weight"], bias_axes)
    dctx = dm.reshape(B, num_heads, T, HS) if reshape_heads else _split(dm, num_heads)
    s = 1 / math.sqrt(HS) if attn_scale else 1.0
    dv = probs.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    dq = dS @ k * s
    dk = dS.swapaxes(-1, -2) @ q * s
    mg = (lambda z: z.reshape(B, T, C)) if reshape_heads else _merge
    dx_parts = []
    for name, dz in (("q", dq), ("k", dk), ("v", dv)):
        dxi, grads[name + ".weight"], grads[name + ".bias"] = _lin_b(mg(dz), x, p[name + ".weight"], bias_axes)
        dx_parts.append(dxi)
    if dx_assign:
        dx = np.zeros_like(x)
        for dxi in dx_parts:
            dx = dxi
    else:
        dx = dx_parts[0] + dx_parts[1] + dx_parts[2]
    if pre_ln:
        d, grads["ln1.weight"], grads["ln1.bias"] = _ln_b(dx, x, p["ln1.weight"], eps)
        dx = dr1 + d
    elif res_attn:
        dx = dx + dr1
    return dx, grads


@entry("encoder_block", "control", "correct", control=True)
def block_ok(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps)


@entry("encoder_block", "no_ffn_residual", "dh = FFN_backward(dr2) only: the residual path around the FFN forgotten")
def block_m1(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, res_ffn=False)


@entry("encoder_block", "no_attn_residual", "dx = Attn_backward(dr1) only: the residual path around attention forgotten")
def block_m2(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, res_attn=False)


@entry("encoder_block", "pre_ln_order", "backward written for a pre-LN block (LN before each sublayer, residual after)")
def block_m3(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, pre_ln=True)


@entry("encoder_block", "heads_reshape", "heads split/merged in the backward with reshape instead of transpose")
def block_m4(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, reshape_heads=True)


@entry("encoder_block", "attn_no_scale", "forgot the 1/sqrt(HS) scale on dq and dk")
def block_m5(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, attn_scale=False)


@entry("encoder_block", "gelu_no_product_rule", "GELU backward inside the FFN as dy * Phi(u) (product rule forgotten)")
def block_m6(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, gelu_full=False)


@entry("encoder_block", "bias_sum_axis0", "linear bias gradients summed over the batch axis only: shape (T, OUT)")
def block_m7(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, bias_axes=0)


@entry("encoder_block", "dx_assign_qkv", "dx from q, k, v accumulated with = instead of += (only the v path kept)")
def block_m8(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, dx_assign=True)


@entry("encoder_block", "ln1_at_x", "LN1 backward evaluated at x (its cached input should be x + attn(x))")
def block_m9(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, ln1_at_x=True)


assert len(ENTRIES) == 130, len(ENTRIES)
