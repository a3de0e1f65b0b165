"""Small torch modules shared by the capture and container tests (import after importorskip("torch"))."""

from __future__ import annotations

import numpy as np
import torch


class Tokens(torch.nn.Module):
    """Token ids [N, T] -> class scores [N, 3]: embedding, convolution over T, mean over T."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.conv = torch.nn.Conv1d(8, 8, 3, padding=1)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(self.emb(tokens).transpose(1, 2)).relu().mean(dim=2))


def tokens(n: int, t: int, seed: int) -> np.ndarray:
    """``n`` sequences of ``t`` token ids below 50."""
    return np.random.default_rng(seed).integers(0, 50, (n, t))


class Recurrent(torch.nn.Module):
    """A float sequence [N, T, 2] -> one score per sequence [N]: a GRU's last state through a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(2, 6, batch_first=True)
        self.out = torch.nn.Linear(6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.gru(x)
        return self.out(state[-1]).squeeze(-1)


def series(n: int, t: int, seed: int) -> np.ndarray:
    """``n`` float32 sequences of ``t`` steps of 2 values."""
    return np.random.default_rng(seed).normal(size=(n, t, 2)).astype(np.float32)
