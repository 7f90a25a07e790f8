"""Regenerate the README's before/after pictures with the project's own commands.

    python -m samples.pictures                          # or: make pictures
    python -m samples.pictures --only lcdnet-s-derain   # one model's (or 'sample')
    python -m samples.pictures --only temporal          # the temporal stage's two

Why a script and not hand-made images: the pictures must show what ``run`` does with the
weights in the tree today, so they are remade (``run`` then ``compare``) whenever weights
change. Three kinds:

- ``sample.png``: the bundled ``samples/rainy_street.mp4`` restored with
  ``configs/sample.yaml`` (the demo).
- ``heldout-MODEL.png``: for every shipped model, synthetic footage over a held-out
  Kodak24 photo (``training.degrade.make_test_video``: never trained on) degraded for the
  model's task, restored with the first config in ``configs/`` that uses the model and
  validates (a model without weights fails validation and is left out, so new weights
  are picked up without editing this file); columns: degraded, restored, clean.
  Needs ``../shared/data``; skipped with a message without it.
- ``temporal.png`` and ``temporal-flicker.png`` (``--only temporal``): a panning clip over
  a held-out Kodak24 photo with the project's rain drawn fresh every frame
  (``benchmarks.temporal``'s clip maker), restored by ``configs/derain.yaml`` without its
  temporal stage (the network alone, per frame) and as it ships (network, then the
  temporal stage); the picture is 1:1 crops of the middle frame (rainy, network,
  network + temporal, clean), the plot is ``compare --reference``'s own.

Full runs and quality tables go to ``out/pictures/``; only the small PNGs are committed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

import run_pipeline
from pipeline.errors import PipelineError
from pipeline.plan.config import PipelineConfig
from pipeline.plan.config_loader import load_config
from pipeline.show.compare import side_by_side

REPO = Path(__file__).resolve().parent.parent
#: The degradation ``training.degrade`` makes for each model task.
KIND_OF_TASK = {
    "derain": "derain",
    "deblur": "shake",  # blurry footage: the pan alone barely blurs it
    "defocus": "defocus",
    "denoise": "denoise",
    "enhance": "lowlight",
    "superres": "superres",
}
#: The held-out photo the synthetic footage pans over (Kodak24: held out from training).
PHOTO = "kodim23.png"
CELL_WIDTH = 320
#: The temporal picture's clip (W, H, frames) and the 1:1 crop of its middle frame (W, H, X, Y).
TEMPORAL_CLIP = (384, 256, 16)
TEMPORAL_CROP = (224, 192, 128, 8)


def cli(*args: str) -> None:
    """Run one ``run_pipeline.py`` command in this process; stop on failure."""
    print("+ run_pipeline.py " + " ".join(args), flush=True)
    code = run_pipeline.main(list(args))
    if code != 0:
        raise SystemExit(code)


def shipped_models(configs: Path) -> dict[str, tuple[Path, str]]:
    """Model name -> (the first config that uses it alone and validates, its task)."""
    import models

    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(configs.glob("*.yaml")):
        try:
            cfg: PipelineConfig = load_config(path)
        except PipelineError as exc:  # e.g. the model's weights are not shipped yet
            print(f"skip {path.name}: {exc}", file=sys.stderr)
            continue
        restores = [s for s in cfg.stages if s.type == "restore"]
        if len(restores) != 1:
            continue
        name = restores[0].params.model
        task = models.get_card(name).task if models.is_registered(name) else None
        if task in KIND_OF_TASK and name not in found:
            found[name] = (path, task)
    return found


def sample_picture(out: Path, work: Path) -> None:
    restored = work / "sample_restored.mp4"
    cli("run", "-c", "configs/sample.yaml", "-i", "samples/rainy_street.mp4",
        "-o", str(restored), "-y", "--executor", "inline")  # fmt: skip
    cli("compare", "samples/rainy_street.mp4", str(restored), "--labels", "rainy,restored",
        "--frames", "24", "--width", "0", "-o", str(out / "sample.png"), "-y")  # fmt: skip


def heldout_picture(name: str, config: Path, task: str, out: Path, work: Path) -> None:
    from training.degrade import make_test_video
    from training.splits import heldout_photos

    photo = next(p for p in heldout_photos("kodak24") if p.name == PHOTO)
    clean, degraded = work / f"{name}-clean.mp4", work / f"{name}-{task}.mp4"
    make_test_video(photo, clean, degraded, KIND_OF_TASK[task], frames=12, size=(480, 320),
                    codec="libx264")  # fmt: skip
    restored = work / f"{name}-restored.mp4"
    cli("run", "-c", str(config), "-i", str(degraded), "-o", str(restored), "-y",
        "--executor", "inline")  # fmt: skip
    cli("compare", str(degraded), str(restored), "--labels", f"{task} (synthetic),{name}",
        "--reference", str(clean), "--frames", "6", "--width", str(CELL_WIDTH),
        "-o", str(out / f"heldout-{name}.png"), "-y")  # fmt: skip
    # The quality table and plot stay with the full runs; only the picture is committed.
    for extra in out.glob(f"heldout-{name}.quality.*"):
        extra.replace(work / extra.name)


def network_only(config: Path, out: Path) -> Path:
    """Write ``config`` without its temporal stages (its network alone, per frame) to ``out``."""
    data = yaml.safe_load(config.read_text())
    data["stages"] = [s for s in data["stages"] if s["type"] != "temporal"]
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def crops(videos: list[Path], index: int, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Frame ``index`` of each video (decoded as ``compare`` decodes), cut to ``box``."""
    from pipeline.media.probe import probe
    from pipeline.show.alignment import aligned_frames

    w, h, x, y = box
    for instant in aligned_frames([probe(v) for v in videos]):
        if instant.index == index:
            return [f[y : y + h, x : x + w] for f in instant.frames]
    raise ValueError(f"no frame {index} in {videos[0]}")


def temporal_picture(
    out: Path,
    work: Path,
    clip: tuple[int, int, int] = TEMPORAL_CLIP,
    box: tuple[int, int, int, int] = TEMPORAL_CROP,
) -> None:
    """Rainy / per-frame network / network + temporal / clean, and compare's quality plot."""
    from benchmarks.temporal import degrade, make_clip
    from training.degrade import load_photo, write_video
    from training.splits import heldout_photos

    photo = next(p for p in heldout_photos("kodak24") if p.name == PHOTO)
    width, height, frames = clip
    clean = make_clip("pan", [load_photo(photo)], frames, (height, width), seed=0)["clean"]
    videos = {"rainy": work / "temporal-rainy.mkv", "clean": work / "temporal-clean.mkv"}
    write_video(videos["clean"], clean, 24)  # ffv1: lossless
    write_video(videos["rainy"], degrade(clean, "rain", seed=0), 24)
    derain = REPO / "configs" / "derain.yaml"
    configs = {"network": network_only(derain, work / "derain-network.yaml"),
               "network + temporal": derain}  # fmt: skip
    for label, config in configs.items():
        videos[label] = work / f"temporal-{label.replace(' + ', '-')}.mp4"
        cli("run", "-c", str(config), "-i", str(videos["rainy"]), "-o", str(videos[label]),
            "-y", "--executor", "inline", "--progress", "none")  # fmt: skip
    sheet = work / "temporal-sheet.png"
    cli("compare", str(videos["network"]), str(videos["network + temporal"]),
        "--labels", "network,network + temporal", "--reference", str(videos["clean"]),
        "--frames", str(frames // 2), "--width", "0", "-o", str(sheet), "-y")  # fmt: skip
    shutil.copyfile(sheet.with_suffix(".quality.png"), out / "temporal-flicker.png")
    labels = ["rainy", "network", "network + temporal", "clean"]
    cells = crops([videos[k] for k in labels], frames // 2, box)
    picture = side_by_side(cells, [f"{lab} #{frames // 2}" for lab in labels])
    cv2.imwrite(str(out / "temporal.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "pictures")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "pictures")
    parser.add_argument(
        "--only",
        nargs="+",
        help="remake only these models' pictures ('sample': the demo's, 'temporal')",
    )
    args = parser.parse_args(argv)
    wanted = (lambda name: name in args.only) if args.only else (lambda name: True)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if wanted("sample"):
        sample_picture(args.out, args.work)
    from training.splits import DATA_ROOT

    if not (DATA_ROOT / "clean" / "kodak24" / PHOTO).is_file():
        print(f"no {DATA_ROOT}/clean/kodak24/{PHOTO}: held-out pictures skipped", file=sys.stderr)
        return 0
    if wanted("temporal"):
        temporal_picture(args.out, args.work)
    for name, (config, task) in shipped_models(REPO / "configs").items():
        if wanted(name):
            heldout_picture(name, config, task, args.out, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
