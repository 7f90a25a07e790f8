"""``make pictures`` picks up every model whose weights ship, and only those, and makes the
temporal picture and flicker plot."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from pipeline.plan.config_loader import load_config
from samples.pictures import PHOTO, REPO, network_only, shipped_models, temporal_picture
from training.splits import DATA_ROOT

CONFIG = """version: 1
stages:
{stages}
execution: {{executor: inline}}
"""


def restore(stage_id: str, model: str) -> str:
    return f"  - {{id: {stage_id}, type: restore, model: {model}}}"


def test_only_configs_that_validate_make_held_out_pictures(tmp_path: Path) -> None:
    missing = tmp_path / "not-shipped.safetensors"
    configs = {
        "a.yaml": restore("derain", "lcdnet-s-derain"),
        "b.yaml": restore("derain", "lcdnet-s-derain"),  # same model: one picture
        "c.yaml": restore("derain", str(missing)),  # no weights: fails validation
        "d.yaml": restore("one", "lcdnet-s-derain") + "\n" + restore("two", "lcdnet-s-derain"),
    }
    for name, stages in configs.items():
        (tmp_path / name).write_text(CONFIG.format(stages=stages))
    assert shipped_models(tmp_path) == {"lcdnet-s-derain": (tmp_path / "a.yaml", "derain")}


def test_network_only_drops_the_temporal_stage(tmp_path: Path) -> None:
    config = network_only(REPO / "configs" / "derain.yaml", tmp_path / "network.yaml")
    shipped = load_config(REPO / "configs" / "derain.yaml")
    cfg = load_config(config)
    assert [s.type for s in shipped.stages] == ["restore", "temporal"]
    assert [s.type for s in cfg.stages] == ["restore"]
    assert cfg.stages[0].params == shipped.stages[0].params
    assert cfg.output == shipped.output


@pytest.mark.skipif(
    not (DATA_ROOT / "clean" / "kodak24" / PHOTO).is_file(), reason="needs ../shared/data"
)
def test_temporal_picture_and_flicker_plot(tmp_path: Path) -> None:
    """The whole entry on a tiny clip: both PNGs, the picture four 1:1 crops wide."""
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir(), work.mkdir()
    temporal_picture(out, work, clip=(128, 96, 6), box=(48, 40, 16, 8))
    picture = cv2.imread(str(out / "temporal.png"))
    assert picture.shape == (40, 4 * 48 + 3 * 4, 3)
    assert cv2.imread(str(out / "temporal-flicker.png")) is not None
    header = (work / "temporal-sheet.quality.csv").read_text().splitlines()[0]
    assert "network + temporal_flicker" in header
