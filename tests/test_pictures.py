"""``make pictures`` picks up every model whose weights ship, and only those."""

from __future__ import annotations

from pathlib import Path

from samples.pictures import shipped_models

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
