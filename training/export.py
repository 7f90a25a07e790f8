"""Ship a trained checkpoint: fp16 safetensors, measured metrics (JSON) and a model card.

``python -m training.export --checkpoint runs/NAME/last.pt --name NAME [--video]
[--pipeline configs/TASK.yaml]``

``python -m training.export --refresh NAME --pipeline configs/TASK.yaml`` re-measures a
shipped model through the pipeline only and rewrites its card: for when the pipeline
(tiling, encoder) changed and the weights did not.

Why in one step: the numbers in a card must be measured on the exact file that ships,
so the export writes the fp16 weights, then runs :mod:`training.evaluate` on that file
(recording the standalone command that reproduces it) and, with ``--pipeline``,
:mod:`training.pipeline_eval` through that config, then writes
``models/weights/NAME.json`` (machine-readable, read by the registry) and
``models/weights/NAME.md`` (the card) beside the weights, and updates the model's entry
in ``models/weights/metrics.json``, the file the registry shows as card quality.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import save_weights
from models.registry import WEIGHTS_DIR, get_card, is_registered
from models.zoo import LCDNET_NOTE, build_arch
from pipeline.write_guard import same_file
from training import evaluate, pipeline_eval
from training.splits import CBSD68_IDS, HELD_OUT_DIRS

#: Metrics copied into the flat per-set summary of NAME.json.
SUMMARY_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


def ema_weights(ema_state: dict[str, Any]) -> dict[str, Any]:
    """The averaged network's own state dict out of an ``AveragedModel`` state dict."""
    return {k.removeprefix("module."): v for k, v in ema_state.items() if k.startswith("module.")}


def export_weights(checkpoint: Path, out: Path, use_ema: bool = True) -> tuple[dict[str, Any], int]:
    """Write the checkpoint's network (its weight average unless ``use_ema`` is False) as
    fp16 safetensors; return its training record and parameter count."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = ckpt["config"]
    model = build_arch(cfg["model"]["arch"], **cfg["model"].get("kwargs", {}))
    use_ema = use_ema and "ema" in ckpt
    model.load_state_dict(ema_weights(ckpt["ema"]) if use_ema else ckpt["model"])
    meta = {"task": cfg["task"], "steps": str(ckpt["step"]), "preset": cfg["model"]["arch"]}
    save_weights(model, out, metadata=meta)
    # Resuming restores the data RNG, so a resumed run equals one uninterrupted run of
    # the same command: the card quotes that command and says it was resumed.
    command = ckpt.get("command", "")
    record = {
        "command": command.replace(" --resume", ""),
        "resumed": "--resume" in command,
        "config": cfg,
        "steps": ckpt["step"],
        "train_seconds": round(ckpt.get("seconds", 0.0)),
        "device": ckpt.get("device", ""),
        "path": ckpt.get("path", ""),
        "ema": use_ema,
        "curve": read_curve(checkpoint.parent / "log.jsonl"),
    }
    return record, sum(p.numel() for p in model.parameters())


def read_curve(log: Path) -> list[dict[str, float]]:
    """The run's validation points (step, training minutes, held-out PSNR), if logged."""
    if not log.is_file():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [
        {"step": r["step"], "minutes": r["train_minutes"], "psnr": r["val_psnr"]}
        for r in records
        if "val_psnr" in r
    ]


def plot_curve(curve: list[dict[str, float]], name: str, out: Path) -> None:
    """Held-out PSNR against training minutes, as a small PNG beside the card."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=90)
    ax.plot([c["minutes"] for c in curve], [c["psnr"] for c in curve], marker=".")
    ax.set_xlabel("training minutes")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title(f"{name}: validation curve")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def summarize(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat per-set numbers: model, input and best classical baseline (what cards show)."""
    out = {}
    for name, res in report["sets"].items():
        best = res["best_classical"]["method"]
        row = {k: res["model"][k] for k in SUMMARY_KEYS}
        row |= {f"input_{k}": res["input"][k] for k in SUMMARY_KEYS}
        row |= {f"classical_{k}": res[best][k] for k in SUMMARY_KEYS}
        row |= {"classical_method": best, "n": res["model"]["n"]}
        out[name] = row
    return out


def update_quality(path: Path, name: str, report: dict[str, Any]) -> None:
    """Write the model's headline numbers (Y-PSNR, Y-SSIM, gain over the input per set)
    into the registry's quality file, keeping the other models' entries."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    entry: dict[str, Any] = {}
    for set_name, res in report["sets"].items():
        entry[f"{set_name}_psnr_y"] = res["model"]["psnr_y"]
        entry[f"{set_name}_ssim_y"] = res["model"]["ssim_y"]
        entry[f"{set_name}_gain_y_db"] = res["gain_y_db"]["vs_input"]
    entry["measured_by"] = report["command"]
    data[name] = entry
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _row(label: str, m: dict[str, Any]) -> str:
    return (
        f"| {label} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | "
        f"{m['psnr_rgb']:.2f} | {m['ssim_rgb']:.4f} |"
    )


def _curve_lines(name: str, curve: list[dict[str, float]]) -> list[str]:
    """The validation curve section: a plot and the points (every few, and the last)."""
    if not curve:
        return []
    keep = curve[:: max(1, len(curve) // 8)]
    if keep[-1] is not curve[-1]:
        keep.append(curve[-1])
    return [
        "## Validation curve",
        "",
        "RGB PSNR of the run's network on 6 held-out Kodak24 centre crops (192x192) with "
        "the task's synthetic degradation, seeded per image (`training.train`, `val`).",
        "",
        f"![validation curve]({name}-curve.png)",
        "",
        "| step | minutes | PSNR (dB) |",
        "|---:|---:|---:|",
        *(f"| {c['step']} | {c['minutes']:.1f} | {c['psnr']:.2f} |" for c in keep),
        "",
    ]


def _pipeline_lines(p: dict[str, Any]) -> list[str]:
    return [
        f"### Through the pipeline ({p['clips']} clips x {p['frames']} frames, {p['size']})",
        "",
        f"Command: `{p['command']}`: synthetic footage of held-out photos decoded, tiled, "
        "restored and encoded by the pipeline with that config, compared with the clean clip.",
        "",
        "| | PSNR Y | SSIM Y | PSNR RGB | flicker |",
        "|---|---:|---:|---:|---:|",
        f"| clean | - | - | - | {p['flicker_clean']:.2f} |",
        *(
            f"| {label} | {p[f'{k}_psnr_y']:.2f} | {p[f'{k}_ssim_y']:.4f} | "
            f"{p[f'{k}_psnr_rgb']:.2f} | {p[f'flicker_{k}']:.2f} |"
            for k, label in (
                ("input", "degraded input"),
                ("encoded", "degraded input, encoded alone (the config without restore stages)"),
                ("output", "pipeline output"),
            )
        ),
        "",
        f"Gain in Y-PSNR through the pipeline: {p['gain_y_db']:+.2f} dB over the input, "
        f"{p['gain_over_encoded_y_db']:+.2f} dB over the input through the same encoder "
        f"({p['seconds_per_frame']:.2f} s a frame on this machine). Flicker: mean absolute "
        "difference of consecutive frames after undoing the known camera motion (8-bit units).",
        "",
    ]


def model_card(
    name: str,
    record: dict[str, Any],
    report: dict[str, Any],
    params: int,
    note: str = "",
    pipeline: dict[str, Any] | None = None,
) -> str:
    """The Markdown card: what it is, how it was trained, what it measures."""
    cfg = record["config"]
    about = get_card(name).notes if is_registered(name) else LCDNET_NOTE
    d, o = cfg["data"], cfg["optim"]
    held = ", ".join(f"clean/{x}" for x in HELD_OUT_DIRS)
    lines = [
        f"# {name}",
        "",
        f"Task: **{cfg['task']}**. Architecture: `{cfg['model']['arch']}` "
        f"({params:,} parameters). {about}",
        "",
        # drawn by `make pictures` (samples/pictures.py) for every shipped model
        f"![held-out Kodak24 footage with synthetic {cfg['task']}: degraded, {name}, clean]"
        f"(../../docs/pictures/heldout-{name}.png)",
        "",
        "## Training",
        "",
        f"- Command: `{record['command']}` (config `training/configs/{cfg['name']}.yaml`"
        + (
            "; run in pieces with `--resume`, which restores the data RNG)"
            if record["resumed"]
            else ")"
        ),
        f"- Steps: {record['steps']}, batch {d['batch']}, patches {d['patch']}x{d['patch']}, "
        f"AdamW lr {o['lr']:g} (warm-up {o['warmup']}, cosine to {o['min_lr']:g}"
        + (f" over a {o['minutes']:g}-minute budget" if o.get("minutes") else "")
        + f"), loss `{cfg['loss']['kind']}`"
        + (f", exported weights: EMA (decay {cfg['ema']:g})" if record.get("ema") else "")
        + (f", warm start from `{cfg['model']['init']}`" if cfg["model"].get("init") else "")
        + ".",
        f"- Device: {record['device'] or 'unknown'}"
        + (f" ({record['path']})" if record.get("path") else "")
        + f"; training time about {record['train_seconds'] / 60:.0f} min.",
        f"- Data: the clean photos of `shared/data/clean` minus the held-out ones ({held} and "
        f"the {len(CBSD68_IDS)} CBSD68 photos in bsds500/val), wallpapers over 1600 px "
        "halved (INTER_AREA), degraded on the fly by `training.degrade` "
        f"(`{cfg['task']}`). The val/ pairs were never used for training or tuning.",
        "- Weights: fp16 safetensors (loaded into fp32).",
        *([f"- Note: {note}"] if note else []),
        "",
        *_curve_lines(name, record.get("curve", [])),
        "## Measured",
        "",
        f"Command: `{report['command']}` ({report['device']}, torch {report['torch']}).",
        "Outputs are rounded to 8 bits before measuring; Y is BT.601 studio-range luma.",
        "",
    ]
    for set_name, res in report["sets"].items():
        best = res["best_classical"]["method"]
        lines += [
            f"### {set_name} ({res['model']['n']} images)",
            "",
            "| method | PSNR Y | SSIM Y | PSNR RGB | SSIM RGB |",
            "|---|---:|---:|---:|---:|",
            _row("degraded input", res["input"]),
            _row(f"classical ({best})", res[best]),
            _row(f"**{name}**", res["model"]),
            "",
            f"Gain in Y-PSNR: {res['gain_y_db']['vs_input']:+.2f} dB over the input, "
            f"{res['gain_y_db']['vs_best_classical']:+.2f} dB over the best classical filter.",
            "",
        ]
    if "video" in report:
        v = report["video"]
        lines += [
            f"### Synthetic video ({v['clips']} clips x {v['frames']} frames, {v['size']})",
            "",
            f"PSNR RGB: input {v['psnr_input']:.2f} dB, model {v['psnr_model']:.2f} dB. "
            f"Flicker (mean abs. difference of consecutive frames after undoing the known "
            f"motion, 8-bit units): clean {v['flicker_clean']:.2f}, input "
            f"{v['flicker_input']:.2f}, model {v['flicker_model']:.2f} "
            f"(excess over clean {v['flicker_excess']:+.2f}).",
            "",
        ]
    if pipeline:
        lines += _pipeline_lines(pipeline)
    return "\n".join(lines)


def measure_through(config: Path, task: str, weights: Path) -> dict[str, Any]:
    """The weights file through a pipeline config (:mod:`training.pipeline_eval`)."""
    argv = ["--config", str(config), "--task", task, "--model", os.path.relpath(weights)]
    return pipeline_eval.main(argv)


def refresh_pipeline(name: str, config: Path, out_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Re-measure shipped weights through ``config`` and rewrite NAME.json and the card;
    the training record and the standalone evaluation stay as exported."""
    meta = out_dir / f"{name}.json"
    result = json.loads(meta.read_text())
    through = measure_through(config, result["task"], out_dir / result["weights"])
    result["pipeline"] = through
    meta.write_text(json.dumps(result, indent=2) + "\n")
    record = result["training"]
    card = model_card(name, record, result["evaluation"], result["params"], record["note"], through)
    (out_dir / f"{name}.md").write_text(card)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: export weights, measure them, write NAME.json and NAME.md beside them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="training .pt")
    source.add_argument(
        "--refresh", metavar="NAME", help="a shipped model: re-measure through --pipeline only"
    )
    parser.add_argument("--name", help="model name, e.g. lcdnet-s-derain")
    parser.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--video", action="store_true", help="also measure video flicker")
    parser.add_argument(
        "--weights",
        choices=["ema", "model"],
        default="ema",
        help="ship the weight average (default) or the network's own last weights",
    )
    parser.add_argument("--pipeline", type=Path, help="also measure through this pipeline config")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--note", default="", help="a remark for the card (run history)")
    args = parser.parse_args(argv)
    if args.refresh:
        if not args.pipeline:
            parser.error("--refresh needs --pipeline CONFIG")
        return refresh_pipeline(args.refresh, args.pipeline, args.out_dir)
    if not args.name:
        parser.error("--checkpoint needs --name")
    weights = args.out_dir / f"{args.name}.safetensors"
    if same_file(weights, args.checkpoint):
        parser.error(f"{weights} is the checkpoint being exported; give another --name")
    record, params = export_weights(args.checkpoint, weights, use_ema=args.weights == "ema")
    eval_argv = ["--model", os.path.relpath(weights), "--task", record["config"]["task"]]
    eval_argv += ["--video"] if args.video else []
    eval_argv += ["--threads", str(args.threads)] if args.threads else []
    report = evaluate.main(eval_argv)
    through = None
    if args.pipeline:
        through = measure_through(args.pipeline, record["config"]["task"], weights)
    export_cmd = shlex.join(["python", "-m", "training.export", *(argv or sys.argv[1:])])
    result = {
        "name": args.name,
        "task": record["config"]["task"],
        "preset": record["config"]["model"]["arch"],
        "weights": weights.name,
        "params": params,
        "export_command": export_cmd,
        "training": {**record, "note": args.note},
        "metrics": summarize(report),
        "evaluation": report,
        "pipeline": through,
    }
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    update_quality(args.out_dir / "metrics.json", args.name, report)
    if record["curve"]:
        plot_curve(record["curve"], args.name, args.out_dir / f"{args.name}-curve.png")
    (args.out_dir / f"{args.name}.md").write_text(
        model_card(args.name, record, report, params, args.note, through)
    )
    return result


if __name__ == "__main__":
    main()
