"""MIRNet v1/v2 state dicts match the published ones name by name, so the authors'
checkpoints load unchanged. The reference lists (names and shapes only) live in tests/data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_state_dict_strict, unwrap_state_dict
from models.mirnet_v1 import MIRNetV1
from models.mirnet_v2 import MIRNetV2
from models.profile import count_params

DATA = Path(__file__).parent / "data"


def reference(name: str) -> tuple[list[tuple[str, tuple[int, ...]]], int, int]:
    """(entries, declared entry count, declared value count) of a reference TSV."""
    lines = (DATA / name).read_text().splitlines()
    header = re.search(r"(\d+) entries, (\d+) values", lines[0])
    assert header, lines[0]
    entries = []
    for line in lines[1:]:
        key, shape = line.split("\t")
        entries.append((key, tuple(int(d) for d in shape.split("x"))))
    return entries, int(header[1]), int(header[2])


CASES = [
    ("mirnet_v1_state_dict.tsv", MIRNetV1, 31_787_436),
    ("mirnet_v2_state_dict.tsv", MIRNetV2, 5_858_560),
]


@pytest.mark.parametrize(("tsv", "cls", "params"), CASES)
def test_state_dict_matches_published_entry_by_entry(tsv: str, cls: type, params: int) -> None:
    entries, n_entries, n_values = reference(tsv)
    with torch.device("meta"):
        model = cls()
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert len(entries) == n_entries
    for i, (mine, ref) in enumerate(zip(ours, entries, strict=False)):
        assert mine == ref, f"entry {i}: ours {mine} vs published {ref}"
    assert len(ours) == len(entries)
    assert sum(v.numel() for v in model.state_dict().values()) == n_values
    assert count_params(model) == params


def test_v1_streams_share_their_dual_attention_unit() -> None:
    with torch.device("meta"):
        model = MIRNetV1()
    for rrg in model.body:
        for msrb in list(rrg.body)[:-1]:
            for stream in msrb.blocks:
                assert stream[0] is stream[1]


@pytest.mark.parametrize(
    ("tsv", "cls", "wrap"),
    [
        (
            "mirnet_v1_state_dict.tsv",
            MIRNetV1,
            lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        ),
        ("mirnet_v2_state_dict.tsv", MIRNetV2, lambda sd: {"params": sd}),
    ],
)
def test_published_layout_loads(tsv: str, cls: type, wrap) -> None:
    """A checkpoint laid out like the published ones (v1: DataParallel ``module.`` keys
    under ``state_dict``; v2: ``params``) loads with the strict loader."""
    entries, _, _ = reference(tsv)
    published = wrap({k: torch.full(shape, 0.5) for k, shape in entries})
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")  # skips the random init of 32 M values
    load_state_dict_strict(model, unwrap_state_dict(published))
    assert all(torch.all(v == 0.5) for v in model.state_dict().values())
