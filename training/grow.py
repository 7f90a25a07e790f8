"""Grow a trained network into a deeper preset of the same architecture.

A session's training continues from the shipped weights; when a preset has flattened, a
deeper one must not start again from noise. Every block LCDNet's fused build adds starts
as the identity (zero output projections), so a deeper preset loaded with the smaller
one's weights computes the same function: training continues from the shipped quality with
more capacity. ``grow_into`` loads what matches and proves the function is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.checkpoint import CheckpointError


def grow_into(
    model: nn.Module,
    source: nn.Module,
    state: Mapping[str, torch.Tensor] | None = None,
    *,
    probe_size: int = 64,
    atol: float = 1e-5,
) -> list[str]:
    """Copy ``source``'s weights (or ``state``) into the larger ``model``; return the names
    ``model`` has that the source lacks (left as initialised).

    Raises :class:`CheckpointError` when a source weight has no place in ``model`` (a name
    it lacks or another shape), or when the grown model's output differs from the
    source's on a probe image: a block that does not start as the identity would throw
    the trained function away.
    """
    state = dict(source.state_dict() if state is None else state)
    target = model.state_dict()
    unplaced = [k for k in state if k not in target or target[k].shape != state[k].shape]
    if unplaced:
        shown = ", ".join(unplaced[:5]) + (" ..." if len(unplaced) > 5 else "")
        raise CheckpointError(
            f"cannot grow: {len(unplaced)} source weight(s) have no place: {shown}"
        )
    added = [k for k in target if k not in state]
    model.load_state_dict(state, strict=False)
    probe = torch.rand(1, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    was_training = model.training, source.training
    model.eval(), source.eval()
    with torch.no_grad():
        dtype = next(model.parameters()).dtype
        grown = model(probe.to(dtype)).float()
        before = source(probe.to(next(source.parameters()).dtype)).float()
    model.train(was_training[0]), source.train(was_training[1])
    gap = (grown - before).abs().max().item()
    if gap > atol:
        raise CheckpointError(
            f"cannot grow: the grown network differs from the source by {gap:.3g} "
            "(its added blocks do not start as the identity)"
        )
    return added
