"""The sequence loss: per-position cross-entropy averaged with a weight per position."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sequence_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted mean cross-entropy over all positions, in nats.

    logits (B, T, V), targets (B, T) of class indices, weights (B, T) or None for all ones.
    A weight of 0 masks its position out (padding); the mean divides by the sum of the weights,
    as the lecture's `sequence_loss` does.
    """
    assert logits.dim() == 3 and targets.shape == logits.shape[:2], (logits.shape, targets.shape)
    flat = logits.reshape(-1, logits.size(-1)).float()
    if weights is None:
        return F.cross_entropy(flat, targets.reshape(-1).long())
    assert weights.shape == targets.shape, (weights.shape, targets.shape)
    per_position = F.cross_entropy(flat, targets.reshape(-1).long(), reduction="none")
    w = weights.reshape(-1).to(per_position.dtype)
    return (per_position * w).sum() / w.sum().clamp_min(1e-12)
