"""Small torch model classes that netstruct exports out of the box (imports torch).

:class:`~netstruct.convert.rebuilt.RebuiltModel` (what :func:`netstruct.to_torch` returns) lives
with the re-import code in :mod:`netstruct.convert`.
"""

from __future__ import annotations

import torch

__all__ = ["RecurrentClassifier"]


class RecurrentClassifier(torch.nn.Module):
    """A recurrent layer (batch first) followed by a Linear head on the last time step.

    Examples
    --------
    >>> m = RecurrentClassifier("GRU", 8, 16, 3)
    >>> m(torch.zeros(2, 5, 8)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        n_classes: int,
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        rnn_cls = getattr(torch.nn, kind)
        self.rnn = rnn_cls(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.head = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])
