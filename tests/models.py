"""Small torch models used across the tests."""

from __future__ import annotations

import torch


class LastStep(torch.nn.Module):
    """A recurrent layer followed by a Linear head on the last step (the usual classifier)."""

    def __init__(
        self,
        kind: str,
        n_in: int = 5,
        hidden: int = 4,
        n_out: int = 3,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = True,
    ) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.rnn = getattr(torch.nn, kind)(
            n_in,
            hidden,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
        )
        self.fc = torch.nn.Linear(hidden * (2 if bidirectional else 1), n_out)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1] if self.batch_first else out[-1])


class FinalState(torch.nn.Module):
    """Head on h_n[-1] (unidirectional), with a functional activation."""

    def __init__(self, kind: str = "GRU") -> None:
        super().__init__()
        self.is_lstm = kind == "LSTM"
        self.rnn = getattr(torch.nn, kind)(3, 4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        if self.is_lstm:  # a Python attribute, so torch.fx traces the same branch as eager mode
            h = h[0]
        return torch.log_softmax(self.fc(torch.relu(h[-1])), dim=-1)


def mlp(sizes, act=torch.nn.ReLU, bias=True):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


class UserCNN(torch.nn.Module):
    """A CNN as users write it: conv/BN/ReLU/max-pool, a depthwise residual block, a Linear head."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.pool = torch.nn.MaxPool2d(2)
        self.dw = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(4)
        self.conv3 = torch.nn.Conv2d(4, 6, 1)
        self.fc = torch.nn.Linear(6 * 2 * 2, n_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(x + self.bn2(self.dw(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(self.conv3(x), 2)
        return self.fc(torch.flatten(x, 1))


class TextLSTM(torch.nn.Module):
    """Embedding + LSTM text classifier on token ids."""

    def __init__(self, vocab: int = 11, dim: int = 5, hidden: int = 4, n_classes: int = 3) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.rnn = torch.nn.LSTM(dim, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, n_classes)

    def forward(self, tokens):
        out, _ = self.rnn(self.emb(tokens))
        return self.fc(out[:, -1])


class BiGRUCat(torch.nn.Module):
    """A bidirectional GRU whose final states of both directions are joined with torch.cat."""

    def __init__(self, n_in: int = 3, hidden: int = 4, n_classes: int = 2) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(n_in, hidden, batch_first=True, bidirectional=True)
        self.fc = torch.nn.Linear(2 * hidden, n_classes)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(torch.cat((h[-2], h[-1]), dim=1))


class ResidualMLP(torch.nn.Module):
    """Pre-norm residual MLP blocks (LayerNorm, GELU) and a plain ``x + f(x)`` block."""

    def __init__(self, n_in: int = 6, width: int = 8, n_classes: int = 3) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(n_in, width)
        self.norm = torch.nn.LayerNorm(width)
        self.f1 = torch.nn.Linear(width, width)
        self.f2 = torch.nn.Linear(width, width)
        self.head = torch.nn.Linear(width, n_classes)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.f1(torch.nn.functional.gelu(self.norm(h)))
        h = h + torch.tanh(self.f2(h))
        return self.head(h)


class AttentionClassifier(torch.nn.Module):
    """Embedding, self-attention with a residual LayerNorm, mean over tokens, Linear head."""

    def __init__(self, vocab: int = 20, dim: int = 8, heads: int = 2, n_classes: int = 3) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, n_classes)

    def forward(self, tokens):
        h = self.emb(tokens)
        a, _ = self.attn(h, h, h)
        h = self.norm(h + a)
        return self.head(h.mean(1))


class EncoderClassifier(torch.nn.Module):
    """``nn.TransformerEncoder`` (pre- and post-norm layers) with a Linear head on token 0."""

    def __init__(self, dim: int = 8, n_classes: int = 3, norm_first: bool = False) -> None:
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(
            dim, 2, 16, dropout=0.1, batch_first=True, norm_first=norm_first
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer, 2, norm=torch.nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.head = torch.nn.Linear(dim, n_classes)

    def forward(self, x):
        return self.head(self.encoder(x)[:, 0])


class HandWrittenAttention(torch.nn.Module):
    """Causal self-attention written out as users (minGPT-style) write it, with a head."""

    def __init__(self, dim: int = 8, heads: int = 2, n_classes: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.ln = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, n_classes)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(self.ln(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return self.head(x[:, -1])


class Seq2SeqClassifier(torch.nn.Module):
    """``nn.TransformerEncoder`` memory read by a causal ``nn.TransformerDecoder``, one input."""

    def __init__(
        self,
        dim: int = 8,
        heads: int = 2,
        n_classes: int = 3,
        norm_first: bool = False,
        activation: str = "relu",
        length: int = 5,
    ) -> None:
        super().__init__()
        kw = {"dropout": 0.0, "batch_first": True, "norm_first": norm_first}
        enc = torch.nn.TransformerEncoderLayer(dim, heads, 16, activation=activation, **kw)
        self.encoder = torch.nn.TransformerEncoder(enc, 1, enable_nested_tensor=False)
        dec = torch.nn.TransformerDecoderLayer(dim, heads, 16, activation=activation, **kw)
        self.decoder = torch.nn.TransformerDecoder(dec, 2, norm=torch.nn.LayerNorm(dim))
        self.head = torch.nn.Linear(dim, n_classes)
        self.register_buffer("causal", torch.nn.Transformer.generate_square_subsequent_mask(length))

    def forward(self, x):
        memory = self.encoder(x)
        h = self.decoder(x, memory, tgt_mask=self.causal, tgt_is_causal=True)
        return self.head(h[:, -1])


class CrossAttention(torch.nn.Module):
    """``nn.MultiheadAttention`` whose query, key and value come from three layers.

    ``kdim``/``vdim`` other than the embedding width give it separate projection weights; the
    keys and values are read from the first ``n_keys`` positions (fewer keys than queries).
    """

    def __init__(self, dim: int = 8, heads: int = 2, kdim: int = 6, vdim: int = 5) -> None:
        super().__init__()
        self.q = torch.nn.Linear(dim, dim)
        self.k = torch.nn.Linear(dim, kdim)
        self.v = torch.nn.Linear(dim, vdim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True, kdim=kdim, vdim=vdim)
        self.head = torch.nn.Linear(dim, 3)

    def forward(self, x, n_keys: int = 3):
        ctx = x[:, :n_keys]
        out, _ = self.attn(self.q(x), self.k(ctx), self.v(ctx), need_weights=False)
        return self.head(out.mean(1))
