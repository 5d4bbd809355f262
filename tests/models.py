"""Small torch models used across the tests."""

from __future__ import annotations

import torch


class LastStep(torch.nn.Module):
    """A recurrent layer followed by a Linear head on the last step (the usual classifier)."""

    def __init__(self, kind: str, n_in: int = 5, hidden: int = 4, n_out: int = 3, num_layers: int = 1,
                 bidirectional: bool = False, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.rnn = getattr(torch.nn, kind)(n_in, hidden, num_layers=num_layers, bidirectional=bidirectional,
                                           batch_first=batch_first)
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
