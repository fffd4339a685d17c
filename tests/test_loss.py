"""The sequence loss reproduces the lecture's numbers and masks by weight."""

from __future__ import annotations

import pytest
import torch

from charnext.modeling.loss import sequence_loss

TARGETS = torch.tensor([[1, 1, 1]])


@pytest.mark.parametrize(
    ("logits", "expected"),
    [
        ([[[0.2, 0.7], [0.6, 0.2], [0.2, 0.9]]], 0.5968),
        ([[[0.3, 0.7], [0.3, 0.7], [0.3, 0.7]]], 0.5130),
        ([[[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]]], 0.3711),
    ],
)
def test_lecture_values(logits, expected):
    logits = torch.tensor(logits)
    assert sequence_loss(logits, TARGETS, torch.ones(1, 3)).item() == pytest.approx(expected, abs=1e-4)
    assert sequence_loss(logits, TARGETS).item() == pytest.approx(expected, abs=1e-4)


def test_zero_weight_masks_a_position():
    logits = torch.tensor([[[0.2, 0.7], [0.6, 0.2], [0.2, 0.9]]])
    masked = sequence_loss(logits, TARGETS, torch.tensor([[1.0, 0.0, 1.0]]))
    only_kept = sequence_loss(logits[:, [0, 2]], TARGETS[:, [0, 2]])
    assert masked.item() == pytest.approx(only_kept.item(), abs=1e-6)


def test_padding_changes_nothing():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    targets = torch.randint(0, 7, (2, 4))
    padded_logits = torch.cat([logits, torch.randn(2, 3, 7)], dim=1)
    padded_targets = torch.cat([targets, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    weights = torch.cat([torch.ones(2, 4), torch.zeros(2, 3)], dim=1)
    assert sequence_loss(padded_logits, padded_targets, weights).item() == pytest.approx(
        sequence_loss(logits, targets).item(), abs=1e-6
    )
