"""The device fast path: detection, the path ``precision`` picks, the fp32 redo of a
non-finite batch, and that bf16 stays within half a code value of fp32."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import models
from models.checkpoint import read_metadata
from models.fast_path import FastPath, cpu_has_native_bf16, pick_fast_path
from models.zoo import build_arch
from pipeline.plan.config_loader import parse_config
from pipeline.stages.restore import RestoreStage
from tests.nets import register_test_model


def _cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
    return str(path)


@pytest.mark.parametrize(
    ("flags", "native"),
    [("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True), ("avx512f avx512bw", False)],
)
def test_native_bf16_read_from_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, flags)) is native


def test_unknown_cpu_is_not_native_bf16(tmp_path: Path) -> None:
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False


def test_auto_follows_the_cpu() -> None:
    path = pick_fast_path("cpu")
    if cpu_has_native_bf16():
        assert path == FastPath(torch.device("cpu"), torch.bfloat16, True)
    else:
        assert path == FastPath(torch.device("cpu"), None, False)


def test_explicit_precisions() -> None:
    assert pick_fast_path("cpu", "fp32") == FastPath(torch.device("cpu"), None, False)
    bf16 = pick_fast_path("cpu", "bf16")
    assert bf16.dtype == torch.bfloat16 and bf16.channels_last
    with pytest.raises(ValueError, match="unknown precision"):
        pick_fast_path("cpu", "int4")


def test_fp32_on_a_cpu_takes_the_networks_measured_layout() -> None:
    lcdnet, mirnet = build_arch("lcdnet-s"), build_arch("mirnet-v2-s")
    assert pick_fast_path("cpu", "fp32", lcdnet).channels_last
    assert not pick_fast_path("cpu", "fp32", mirnet).channels_last
    if not cpu_has_native_bf16():
        assert pick_fast_path("cpu", "auto", lcdnet) == FastPath(torch.device("cpu"), None, True)


@torch.inference_mode()
def test_channels_last_fp32_gives_the_same_output_at_odd_sizes() -> None:
    torch.manual_seed(0)
    net = build_arch("lcdnet-s").eval()
    for p in net.parameters():  # zero-initialised projections would hide a layout bug
        p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(2, 3, 37, 53)
    reference = net(x)
    path = pick_fast_path("cpu", "fp32", net)
    out = path.prepare(net)(path.input(x))
    assert out.shape == reference.shape
    assert (out - reference).abs().max() < 1e-4


# Faults taken by the last four of six 64 MiB allocations, each written then freed, after
# a network was prepared on the CPU (a fresh process: the setting is process-wide).
_FAULTS_SCRIPT = """
import resource, torch
from models.fast_path import pick_fast_path
from models.zoo import build_arch
net = build_arch("lcdnet-s")
pick_fast_path("cpu", "fp32", net).prepare(net)
for i in range(6):
    if i == 2:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 << 20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's mallopt")
def test_a_prepared_cpu_path_keeps_freed_activations_in_the_process() -> None:
    """Without it glibc unmaps each freed 64 MiB block and the next one faults all its
    16,384 pages again (65,536 faults over four allocations)."""
    repo = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], cwd=repo, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) < 2_000


class NaNUnderAutocast(nn.Module):
    """Returns NaN when run under autocast (a half-precision overflow), else the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            return torch.full_like(x, float("nan"))
        return x * 0.5


def _stage(model: str, precision: str, tile: int = 0) -> RestoreStage:
    yaml_text = (
        f"version: 1\nstages: [{{id: r, type: restore, model: {model}, precision: {precision}, "
        f"tile: {{size: {tile}}}}}]\nexecution: {{executor: inline}}\n"
    )
    cfg = parse_config(yaml_text, "t.yaml")
    stage = RestoreStage(cfg.stages[0].params)  # type: ignore[arg-type]
    stage.setup(torch.device("cpu"))
    return stage


def test_non_finite_batch_is_redone_in_fp32() -> None:
    name = register_test_model("nan-under-autocast", NaNUnderAutocast)
    stage = _stage(name, "bf16")
    frames = torch.rand(2, 3, 16, 24)
    out = stage.process(frames)
    assert torch.isfinite(out).all() and stage.fp32_retries == 1
    torch.testing.assert_close(out, frames * 0.5)


def _rainy_frame() -> torch.Tensor:
    """A generated textured frame with synthetic rain (no shared data needed)."""
    from training.degrade import add_rain

    gen = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(9 * xx + 3 * yy), 0.4 + 0.3 * yy, 0.6 * xx])
    clean = (base + 0.05 * torch.rand(3, 96, 128, generator=gen)).clamp(0, 1)[None]
    return add_rain(clean, gen)


def test_shipped_model_bf16_within_half_a_code_value_of_fp32() -> None:
    """The shipped derainer loads as the build its file records and restores, and the
    bf16 fast path stays within 0.5 code values (mean) of fp32."""
    frame = _rainy_frame()
    fp32 = _stage("lcdnet-s-derain", "fp32").process(frame)
    bf16 = _stage("lcdnet-s-derain", "bf16").process(frame)
    assert (fp32 - frame).abs().mean() * 255 > 1.0  # it restores: the output moved
    assert (bf16 - fp32).abs().mean() * 255 < 0.5
    recorded = json.loads(read_metadata(models.get_card("lcdnet-s-derain").weights_path)["config"])
    assert recorded.items() <= models.create_model("lcdnet-s-derain").config.items()
