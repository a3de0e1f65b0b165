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
