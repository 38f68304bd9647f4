"""Outside set 9, part 3 of 3 (see ``__init__.py``)."""
from . import part_a, part_b
for _m in (part_a, part_b,):
    globals().update({k: v for k, v in vars(_m).items() if not k.startswith('__')})

def _cos_parts(s, t):
    ns = np.sqrt((s * s).sum(-1, keepdims=True))
    nt = np.sqrt((t * t).sum(-1, keepdims=True))
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    return ns, nt, cos


@E("cosine", "control", "correct", True)
def _(dloss, s_h, t_h, mask):
    return dloss * cos_grad(s_h, t_h, mask)


@E("cosine", "sign_flipped", "returns the gradient of cos instead of 1 - cos (sign flipped)")
def _(dloss, s_h, t_h, mask):
    return -dloss * cos_grad(s_h, t_h, mask)


@E("cosine", "per_sequence_mean", "mean over each sequence's real positions, then mean over the batch")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    g = cos_grad(s_h, t_h, mask) * m.sum()
    return dloss * g / (m.shape[0] * m.sum(1)[:, None, None])


@E("cosine", "divide_by_BT", "divides by B*T (all positions) instead of the number of real positions")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    return dloss * cos_grad(s_h, t_h, mask) * m.sum() / m.size


@E("cosine", "forgot_mask", "divides by the real count but forgets to zero the padded positions")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / (ns * ns)
    return -dloss * dcos / m.sum()


@E("cosine", "norm_constant", "treats |s| as a constant: dcos/ds = t / (|s| |t|)")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns, nt, cos = _cos_parts(s_h, t_h)
    return -dloss * (t_h / (ns * nt)) * m[..., None] / m.sum()


@E("cosine", "ns_not_squared", "second term cos * s / |s| instead of cos * s / |s|^2")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns, nt, cos = _cos_parts(s_h, t_h)
    return -dloss * (t_h / (ns * nt) - cos * s_h / ns) * m[..., None] / m.sum()


@E("cosine", "teacher_norm_second_term", "second term cos * t / |t|^2 (the teacher's vector) instead of cos * s / |s|^2")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns, nt, cos = _cos_parts(s_h, t_h)
    return -dloss * (t_h / (ns * nt) - cos * t_h / (nt * nt)) * m[..., None] / m.sum()


@E("cosine", "second_term_plus", "dcos/ds = t / (|s| |t|) + cos * s / |s|^2: plus instead of minus on the norm term")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns, nt, cos = _cos_parts(s_h, t_h)
    return -dloss * (t_h / (ns * nt) + cos * s_h / (ns * ns)) * m[..., None] / m.sum()


@E("cosine", "norms_no_keepdims", "the dot product and norms summed without keepdims, broadcast against C")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    ns = np.sqrt((s_h * s_h).sum(-1))
    nt = np.sqrt((t_h * t_h).sum(-1))
    cos = (s_h * t_h).sum(-1) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / (ns * ns)
    return -dloss * dcos * m[..., None] / m.sum()


# ------------------------------------------------------------------ triple_loss
def _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas, ce=1, mlm=1, cos=1, kl_fn=None, ce_fn=None):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    kg = kl_fn(logits, t_logits, T) if kl_fn else kl_grad(logits, t_logits, T)
    cg = ce_fn(logits, labels) if ce_fn else ce_grad(logits, labels)
    every = np.ones((1, h.shape[0]))
    dlog = ce * a_ce * kg + mlm * a_mlm * cg
    return dloss * (dlog @ weight + cos * a_cos * cos_grad(h[None], t_h[None], every)[0])


@E("triple_loss", "control", "correct", True)
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas)


@E("triple_loss", "no_alphas", "adds the three gradients without their weights alphas")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, (1.0, 1.0, 1.0))


@E("triple_loss", "no_cosine", "forgets the cosine loss's gradient (only the two losses on the logits)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas, cos=0)


@E("triple_loss", "kl_no_T", "the KL part without any temperature factor: (p - q) / P")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas,
               kl_fn=lambda s, t, T: kl_grad(s, t, T) / T)


@E("triple_loss", "ce_divides_by_P", "the MLM part divides by all P positions instead of the labelled ones")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    lab = np.asarray(labels)
    n = (lab != -100).sum()
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas,
               ce_fn=lambda z, y: ce_grad(z, y) * n / len(lab))


@E("triple_loss", "alphas_swapped", "a_ce put on the MLM loss and a_mlm on the distillation loss")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, (a_mlm, a_ce, a_cos))


@E("triple_loss", "cosine_args_swapped", "the cosine gradient taken with student and teacher swapped, cos_grad(t_h, h)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    base = _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas, cos=0)
    every = np.ones((1, h.shape[0]))
    return base + dloss * a_cos * cos_grad(t_h[None], h[None], every)[0]


@E("triple_loss", "overwrite_not_accumulate", "dh = ... for each loss in turn (= instead of +=): only the cosine term survives")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas, ce=0, mlm=0)


@E("triple_loss", "kl_sign_flipped", "the KL part as q - p (teacher minus student)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas,
               kl_fn=lambda s, t, T: -kl_grad(s, t, T))


@E("triple_loss", "kl_T_squared", "the KL part as T^2 (p - q) / P: forgets the 1/T from s / T")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _tl(dloss, h, weight, t_logits, t_h, labels, T, alphas,
               kl_fn=lambda s, t, T: kl_grad(s, t, T) * T)


# ------------------------------------------------------------------ hidden_mse
def _hm(dloss, s_h, t_h, weight):
    CT, CS = weight.shape
    e = s_h @ weight.T - t_h
    n = e.size
    de = dloss * 2.0 * e / n
    return e, n, de, de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


@E("hidden_mse", "control", "correct", True)
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds, dW


@E("hidden_mse", "no_factor_2", "forgets the 2 from the derivative of the square")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds / 2, dW / 2


@E("hidden_mse", "divide_by_BT", "divides by B*T (positions) instead of B*T*CT (every element)")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds * weight.shape[0], dW * weight.shape[0]


@E("hidden_mse", "dW_transposed", "dweight = s_h^T @ de, shape (CS, CT) instead of (CT, CS)")
def _(dloss, s_h, t_h, weight):
    CT, CS = weight.shape
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds, s_h.reshape(-1, CS).T @ de.reshape(-1, CT)


@E("hidden_mse", "error_sign", "uses e = t_h - s_h W^T in the backward (sign of the error flipped)")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return -ds, -dW


@E("hidden_mse", "ds_uses_WT", "ds_h = de @ weight.T: transposes the projection in the backward")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return de @ weight.T, dW


@E("hidden_mse", "reshape_not_transpose", "dweight = de.reshape(CT, -1) @ s_h.reshape(-1, CS): reshape used as a transpose")
def _(dloss, s_h, t_h, weight):
    CT, CS = weight.shape
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds, de.reshape(CT, -1) @ s_h.reshape(-1, CS)


@E("hidden_mse", "divide_by_student_size", "divides by s_h.size (student width CS) instead of the error's size (CT)")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    k = n / s_h.size
    return ds * k, dW * k


@E("hidden_mse", "dW_missing_scale", "applies 2/n to ds_h but computes dweight from the raw error e")
def _(dloss, s_h, t_h, weight):
    CT, CS = weight.shape
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return ds, e.reshape(-1, CT).T @ s_h.reshape(-1, CS)


@E("hidden_mse", "no_projection_in_ds", "ds_h = 2 e / n: forgets to chain back through the projection weight")
def _(dloss, s_h, t_h, weight):
    e, n, de, ds, dW = _hm(dloss, s_h, t_h, weight)
    return de, dW


# ------------------------------------------------------------------ encoder_block
def _enc(dy, x, mask, p, num_heads, eps=1e-12, bug=None):
    NH = num_heads
    B, T, C = x.shape

    def L(z, n):
        return z @ p[n + ".weight"].T + p[n + ".bias"]

    xq, xk, xv = L(x, "q"), L(x, "k"), L(x, "v")
    q, k, v = split(xq, NH), split(xk, NH), split(xv, NH)
    HS = C // NH
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    big = np.where(np.asarray(mask).astype(bool), 0.0, np.finfo(np.float64).min)[:, None, None, :]
    probs = softmax(scores + big)
    ctx = probs @ v
    m = merge(ctx)
    a = L(m, "o")
    z1 = x + a
    h = ln_fwd(z1, p["ln1.weight"], p["ln1.bias"], eps)[0]
    u = L(h, "ff1")
    g = gelu(u)
    f = L(g, "ff2")
    z2 = h + f
    G = {}
    dz2, G["ln2.weight"], G["ln2.bias"] = ln_bwd(dy, z2, p["ln2.weight"], eps)
    df = dz2
    dg, G["ff2.weight"], G["ff2.bias"] = lin_grads(df, g, p["ff2.weight"])
    du = dg * gelu_grad(u)
    dh_f, G["ff1.weight"], G["ff1.bias"] = lin_grads(du, h, p["ff1.weight"])
    if bug == "ff1_bias_axis0":
        G["ff1.bias"] = du.sum(axis=0)
    if bug == "no_ffn_residual":
        dh = dh_f
    elif bug == "residual_skips_ln":
        dh = dy + dh_f
    else:
        dh = dz2 + dh_f
    dz1, G["ln1.weight"], G["ln1.bias"] = ln_bwd(dh, z1, p["ln1.weight"], eps)
    dm, G["o.weight"], G["o.bias"] = lin_grads(dz1, m, p["o.weight"])
    if bug == "heads_reshape":
        dctx = dm.reshape(B, NH, T, HS)
    else:
        dctx = split(dm, NH)
    pr = softmax(scores) if bug == "probs_no_mask" else probs
    if bug == "no_scale":
        dq, dk, dv = attn_bwd(dctx, q, k, v, pr, scale=1.0)
    elif bug == "softmax_no_sum":
        dv = pr.swapaxes(-1, -2) @ dctx
        dS = pr * (dctx @ v.swapaxes(-1, -2))
        dq, dk = dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS)
    else:
        dq, dk, dv = attn_bwd(dctx, q, k, v, pr)
    dxq, G["q.weight"], G["q.bias"] = lin_grads(merge(dq), x, p["q.weight"])
    dxk, G["k.weight"], G["k.bias"] = lin_grads(merge(dk), x, p["k.weight"])
    dxv, G["v.weight"], G["v.bias"] = lin_grads(merge(dv), x, p["v.weight"])
    if bug == "only_q_path":
        dxa = dxq
    else:
        dxa = dxq + dxk + dxv
    if bug == "no_attn_residual":
        dx = dxa
    else:
        dx = dz1 + dxa
    if bug == "ln1_dgamma_raw":
        C_ = x.shape[-1]
        G["ln1.weight"] = (dh * z1).reshape(-1, C_).sum(0)
    return dx, G


@E("encoder_block", "control", "correct", True)
def _(dy, x, mask, p, num_heads, eps=1e-12):
    return _enc(dy, x, mask, p, num_heads, eps)


def _enc_mistake(short, what):
    def fn(dy, x, mask, p, num_heads, eps=1e-12):
        return _enc(dy, x, mask, p, num_heads, eps, bug=short)
    E("encoder_block", short, what)(fn)


_enc_mistake("no_attn_residual", "forgets the attention residual: dx gets only the gradient through q, k, v")
_enc_mistake("no_ffn_residual", "forgets the FFN residual: dh gets only the gradient through the FFN")
_enc_mistake("residual_skips_ln", "backprops as if the residual bypassed LN2 (pre-LN order): dh = dy + FFN-backward")
_enc_mistake("heads_reshape", "un-merges the heads in the backward with reshape(B, NH, T, HS) instead of a transpose")
_enc_mistake("ff1_bias_axis0", "ff1 bias gradient summed over axis 0 only (batch), not batch and sequence")
_enc_mistake("no_scale", "forgets the 1/sqrt(HS) scale in the attention backward")
_enc_mistake("probs_no_mask", "recomputes the attention probabilities without the padding mask in the backward")
_enc_mistake("softmax_no_sum", "attention softmax backward without the row-sum term: dS = P * dP")
_enc_mistake("only_q_path", "dx through the query projection only: forgets that x also feeds k and v")
