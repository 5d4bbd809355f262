"""Slow, obvious reference for ``netstruct.reconstruct`` (tests only).

Materialises every layer's full feature matrix (explicit im2col loops for convolutions, the
whole input sequence for recurrent layers) and solves each row's ridge problem on its own with
``numpy.linalg.lstsq`` on the stacked system ``[X_s 1; sqrt(n ridge s) I 0] z = [y; 0]`` (``s``: the
mean square of the row's features, the ridge being relative to it). Nothing
is shared with the streaming code.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["naive_reconstruct"]


def _inputs(model, module, X):
    got = {}
    h = module.register_forward_hook(lambda m, a, o: got.update(x=a[0].detach(), y=o))
    with torch.no_grad():
        model(X)
    h.remove()
    return got["x"], got["y"]


def _im2col(x: np.ndarray, conv) -> np.ndarray:
    """Patches (N * positions, C * taps) by explicit loops (Conv1d and Conv2d, zero padding)."""
    if x.ndim == 3:
        x = x[:, :, None, :]
        k, s, d = (1, conv.kernel_size[0]), (1, conv.stride[0]), (1, conv.dilation[0])
        p = (0, conv.padding[0])
    else:
        k, s, d, p = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    H = (xp.shape[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    W = (xp.shape[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    rows = []
    for n in range(x.shape[0]):
        for i in range(H):
            for j in range(W):
                patch = xp[
                    n,
                    :,
                    i * s[0] : i * s[0] + d[0] * (k[0] - 1) + 1 : d[0],
                    j * s[1] : j * s[1] + d[1] * (k[1] - 1) + 1 : d[1],
                ]
                rows.append(patch.reshape(-1))
    return np.array(rows)


def _features(model, module, param, X):
    x, y = _inputs(model, module, X)
    if isinstance(module, torch.nn.Linear):
        return x.reshape(-1, x.shape[-1]).double().numpy(), y
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        return _im2col(x.double().numpy(), module), y
    layer = int(param.split("_l")[1].split("_")[0])
    seq = x
    for lyr in range(layer):  # run the earlier layers one at a time with torch's own cell
        sub = type(module)(
            seq.shape[-1],
            module.hidden_size,
            batch_first=module.batch_first,
            bidirectional=module.bidirectional,
            bias=module.bias,
        )
        sd = {
            k.replace(f"_l{lyr}", "_l0"): v
            for k, v in module.state_dict().items()
            if f"_l{lyr}" in k
        }
        sub.load_state_dict(sd)
        with torch.no_grad():
            seq = sub(seq)[0]
    return seq.reshape(-1, seq.shape[-1]).double().numpy(), None


def _targets(module, param, X_feat, y):
    if y is not None and not isinstance(module, (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU)):
        y = y.detach().double()
        return (y.movedim(1, -1).reshape(-1, y.shape[1]) if y.dim() > 2 else y).numpy()
    W = getattr(module, param).detach().double().numpy()
    b = getattr(module, param.replace("weight", "bias"), None)
    return X_feat @ W.T + (0 if b is None else b.detach().double().numpy())


def _support(block, n_raw):
    lay = block.layout
    if lay.get("type") == "conv":
        return np.repeat(block.mask, n_raw // block.shape[1], axis=1)
    if lay.get("type") == "expand":
        return block.mask[:, np.asarray(lay["columns"])]
    return block.mask


def naive_reconstruct(G_pruned, original, X, block_names, ridge):
    """``{block name: (weight, bias)}`` re-fitted in order, each row solved separately."""
    import netstruct as ns

    pruned = ns.to_torch(G_pruned)
    out = {}
    for name in block_names:
        block = G_pruned.block(name)
        mod = pruned.get_submodule(block.module)
        omod = original.get_submodule(block.module)
        Xp, _ = _features(pruned, mod, block.param, X)
        Xo, yo = _features(original, omod, block.param, X)
        Y = _targets(omod, block.param, Xo, yo)
        param = getattr(mod, block.param)
        Wcur = param.detach().double().numpy().reshape(param.shape[0], -1)
        bias_name = block.bias_param
        bcur = getattr(mod, bias_name).detach().double().numpy() if bias_name else None
        S = _support(block, Wcur.shape[1])
        n = Xp.shape[0]
        Wn, bn = Wcur.copy(), None if bcur is None else bcur.copy()
        for r in range(Wcur.shape[0]):
            feat = np.flatnonzero(S[r])
            if feat.size == 0:
                continue
            A = Xp[:, feat]
            if bcur is not None:
                A = np.hstack([A, np.ones((n, 1))])
            scale = float(np.mean(Xp[:, feat] ** 2))  # the ridge is relative to this
            reg = np.sqrt(n * ridge * scale) * np.eye(feat.size, A.shape[1])
            z = np.linalg.lstsq(
                np.vstack([A, reg]), np.concatenate([Y[:, r], np.zeros(feat.size)]), rcond=None
            )[0]
            Wn[r] = 0.0
            Wn[r, feat] = z[: feat.size]
            if bcur is not None:
                bn[r] = z[feat.size]
        with torch.no_grad():
            param.copy_(torch.from_numpy(Wn.reshape(param.shape)))
            if bcur is not None:
                getattr(mod, bias_name).copy_(torch.from_numpy(bn))
        out[name] = (Wn.reshape(param.shape), bn)
    return out
