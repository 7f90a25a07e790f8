"""Config-driven training: ``python -m training.train -c training/configs/NAME.yaml``.

Why this shape: one YAML file fully describes a run (network preset, task, data, loss,
schedule), so a model card can quote it and a GPU session can rerun it unchanged.
Checkpoints (model + EMA + optimizer + step + data RNG) are written every
``checkpoint.every`` steps and at the end; ``--resume`` continues from the last one.
The step runs in the device's fast path (:mod:`models.fast_path`: bf16 autocast with
channels_last on CUDA and on CPUs with native bf16, fp32 elsewhere; ``precision``
overrides). An exponential moving average of the weights (``ema``) is what gets
exported: it is worth a fraction of a dB for free. Every ``val.every`` steps the EMA
network is measured on held-out synthetic photos and the PSNR is logged against
training minutes, so a card can show its curve. ``--smoke`` runs a few tiny steps on
the CPU, for the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from models.fast_path import FastPath, pick_fast_path
from training.data import PatchSampler
from training.splits import heldout_photos, train_photos

#: Settings every config gets unless it says otherwise.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "threads": None,  # CPU threads (None: torch's default)
    "model": {"arch": "lcdnet-s", "init": None},  # init: weights to warm-start from
    "loss": {"kind": "lcdnet", "fft_weight": 0.1},
    # codec: share of degraded patches round-tripped through x264 (footage is compressed)
    "data": {
        "patch": 128,
        "batch": 8,
        "max_photos": None,
        "downscale_over": 1600,
        "codec": 0.0,
        "clean": 0.0,  # share of pairs left undegraded: nothing to restore, nothing to change
        "heavy": 0.0,  # derain: share of pairs with heavy rain (streak layers + accumulation)
        "sparse": 0.0,  # derain: share with the published sets' thin one-direction streaks
        "gaussian": 0.0,  # denoise: share of pairs with white Gaussian noise, sigma 5-55
    },
    "optim": {
        "lr": 2e-4,
        "min_lr": 1e-6,
        "warmup": 200,
        "steps": 10000,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
        "grad_clip": 1.0,
    },
    "checkpoint": {"every": 500, "keep_every": 1000},
    "compile": False,
    "precision": "auto",
    "ema": 0.999,  # 0 disables the weight average
    "val": {"every": 0, "images": 6, "crop": 192},  # every 0: no validation curve
    "log_every": 20,
}

SMOKE: dict[str, Any] = {
    "data": {"patch": 32, "batch": 2, "max_photos": 3},
    "optim": {"steps": 3, "warmup": 1},
    "checkpoint": {"every": 2, "keep_every": 0},
    "log_every": 1,
    "compile": False,
    "val": {"every": 0},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path, smoke: bool = False) -> dict[str, Any]:
    """Read a run config and fill in defaults (and the smoke overrides)."""
    with open(path) as f:
        cfg = _merge(DEFAULTS, yaml.safe_load(f) or {})
    for key in ("name", "task"):
        if key not in cfg:
            raise ValueError(f"{path}: missing required key {key!r}")
    return _merge(cfg, SMOKE) if smoke else cfg


def lr_at(step: int, optim: dict[str, Any], minutes: float = 0.0) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``steps``, or, when
    ``optim.minutes`` is set, at that many minutes of training (a wall-time budget: the
    schedule ends on time whatever speed the machine gives the run)."""
    lr, min_lr, warm, total = optim["lr"], optim["min_lr"], optim["warmup"], optim["steps"]
    if step < warm:
        return lr * (step + 1) / warm
    if optim.get("minutes"):
        progress = min(1.0, minutes / optim["minutes"])
    else:
        progress = min(1.0, (step - warm) / max(1, total - warm))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def ema_with_warmup(decay: float) -> Any:
    """An ``AveragedModel`` update whose decay ramps up as min(decay, (1 + n) / (10 + n))
    over the first updates n: a fixed 0.998 would still hold 13% of the random initial
    weights after 1,000 steps, which a short CPU run exports."""

    def update(averaged: list[Tensor], current: list[Tensor], n: Tensor | int) -> None:
        n = int(n)
        d = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


def build_loss(cfg: dict[str, Any]) -> nn.Module:
    """The LCDNet multi-scale loss, or plain Charbonnier on the full-size output."""
    from models.losses import CharbonnierLoss, LCDNetLoss

    kind = cfg["kind"]
    if kind == "lcdnet":
        return LCDNetLoss(fft_weight=cfg.get("fft_weight", 0.1))
    if kind == "charbonnier":
        return CharbonnierLoss()
    raise ValueError(f"unknown loss {kind!r} (known: lcdnet, charbonnier)")


def build_network(model_cfg: dict[str, Any]) -> nn.Module:
    """An untrained network of the configured architecture/preset."""
    from models.zoo import build_arch

    return build_arch(model_cfg["arch"], **model_cfg.get("kwargs", {}))


def _forward(model: nn.Module, x: Tensor, multi_scale: bool) -> Tensor | list[Tensor]:
    return model(x, return_all_scales=True) if multi_scale else model(x)


def validation_pairs(task: str, val_cfg: dict[str, Any]) -> list[tuple[Tensor, Tensor]]:
    """Fixed ``(degraded, clean)`` centre crops of held-out Kodak24 photos (seeded per
    image): a cheap, repeatable curve point. Never trained on; the card's numbers come
    from ``training.evaluate`` on whole photos."""
    from training.degrade import degrade, load_photo

    crop = val_cfg["crop"]
    pairs = []
    for i, photo in enumerate(heldout_photos("kodak24")[: val_cfg["images"]]):
        img = load_photo(photo)
        h, w = img.shape[-2:]
        margin = 32 if task == "deblur" else 0
        top, left = (h - crop) // 2 - margin, (w - crop) // 2 - margin
        src = img[..., top : top + crop + 2 * margin, left : left + crop + 2 * margin]
        gen = torch.Generator().manual_seed(10_000 + i)
        pairs.append(degrade(src, task, gen, (crop, crop)))
    return pairs


def validate(model: nn.Module, pairs: list[tuple[Tensor, Tensor]], path: FastPath) -> float:
    """Mean RGB PSNR (dB) of the model's 8-bit outputs on ``pairs``."""
    from training.degrade import quantize8
    from training.metrics import psnr

    was_training = model.training
    model.eval()
    scores = []
    with torch.inference_mode(), path.autocast():
        for lq, gt in pairs:
            out = model(path.input(lq))
            scores.append(psnr(quantize8(out.float().clamp(0, 1).cpu()), gt))
    model.train(was_training)
    return round(sum(scores) / len(scores), 3)


def warm_start(model: nn.Module, source: Path) -> None:
    """Load weights (strictly) from shipped safetensors or a training checkpoint (its EMA
    when it has one): a run continues from what earlier sessions shipped. Shipped weights
    of a smaller preset grow into a deeper one (training/grow.py)."""
    from models.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict
    from models.zoo import create_model
    from training.export import ema_weights
    from training.grow import grow_into

    if source.suffix == ".safetensors":
        try:
            load_checkpoint(model, source)
        except CheckpointError as mismatch:
            try:
                added = grow_into(model, create_model(source))
            except CheckpointError as cannot:
                raise CheckpointError(f"{mismatch}; {cannot}") from None
            print(f"grown from {source}: {len(added)} new weights start as the identity")
        return
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    state = ema_weights(ckpt["ema"]) if "ema" in ckpt else ckpt["model"]
    load_state_dict_strict(model, state, str(source))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically, so a crash mid-write never leaves a truncated ``last.pt``."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    cfg: dict[str, Any],
    out_dir: Path,
    resume: bool = False,
    command: str = "",
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Run (or continue) one training run; return a summary (steps, time).

    ``time_limit`` (seconds) checkpoints and stops early, for machines lent by the
    minute; ``resume`` then continues with the same schedule.
    """
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    device_name = (
        torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} torch threads)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)

    photos = train_photos()
    if cfg["data"]["max_photos"]:
        photos = photos[:: max(1, len(photos) // cfg["data"]["max_photos"])]
        photos = photos[: cfg["data"]["max_photos"]]
    sampler = PatchSampler(
        photos,
        cfg["task"],
        cfg["data"]["patch"],
        cfg["data"]["batch"],
        seed=cfg["seed"],
        downscale_over=cfg["data"]["downscale_over"],
        device=device,
        codec=cfg["data"]["codec"],
        clean=cfg["data"]["clean"],
        heavy=cfg["data"]["heavy"],
        sparse=cfg["data"]["sparse"],
        gaussian=cfg["data"]["gaussian"],
    )
    model = build_network(cfg["model"])
    path = pick_fast_path(device, cfg["precision"], model)
    model = path.prepare(model)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg["ema"])) if cfg["ema"] else None
    val_pairs = validation_pairs(cfg["task"], cfg["val"]) if cfg["val"]["every"] else []
    criterion = build_loss(cfg["loss"]).to(device)
    multi_scale = cfg["loss"]["kind"] == "lcdnet"
    opt_cfg = cfg["optim"]
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=opt_cfg["lr"],
        betas=tuple(opt_cfg["betas"]),
        weight_decay=opt_cfg["weight_decay"],
        fused=True,  # one kernel per step instead of a loop of small ops per parameter
    )
    step, seconds_before = 0, 0.0
    last = out_dir / "last.pt"
    if cfg["model"].get("init") and not (resume and last.is_file()):
        warm_start(model, Path(cfg["model"]["init"]))
        if ema is not None:
            ema.module.load_state_dict(model.state_dict())
        print(f"warm start from {cfg['model']['init']}", flush=True)
    if resume and last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        if ema is not None and "ema" in ckpt:
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        sampler.load_state_dict(ckpt["sampler"])
        step, seconds_before = ckpt["step"], ckpt.get("seconds", 0.0)
        print(f"resumed from {last} at step {step}", flush=True)
    run_model = torch.compile(model) if cuda and cfg["compile"] else model

    def checkpoint(step: int) -> None:
        state = {
            "model": model.state_dict(),
            **({"ema": ema.state_dict()} if ema is not None else {}),
            "optimizer": optimizer.state_dict(),
            "sampler": sampler.state_dict(),
            "step": step,
            "config": cfg,
            "command": command,
            "seconds": seconds_before + time.time() - t0 - val_seconds,
            "device": device_name,
            "path": path.describe(),
        }
        save_checkpoint(last, state)
        keep = cfg["checkpoint"]["keep_every"]
        if keep and step % keep == 0:
            save_checkpoint(out_dir / f"step_{step:06d}.pt", state)

    (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    log = (out_dir / "log.jsonl").open("a")
    total, t0, running, n_running = opt_cfg["steps"], time.time(), 0.0, 0
    start = step
    model.train()
    val_seconds = 0.0  # validation time, not counted as training time

    def train_minutes() -> float:
        return (seconds_before + time.time() - t0 - val_seconds) / 60

    budget = opt_cfg.get("minutes") or float("inf")
    while step < total and train_minutes() < budget:
        lq, gt = sampler.next()
        lq = path.input(lq)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, opt_cfg, train_minutes())
        with path.autocast():
            out = _forward(run_model, lq, multi_scale)
        loss = criterion(
            [o.float() for o in out] if multi_scale else out.float(),  # type: ignore[union-attr]
            gt,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt_cfg["grad_clip"]:
            nn.utils.clip_grad_norm_(model.parameters(), opt_cfg["grad_clip"])
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        running += float(loss.detach())
        n_running += 1
        if step % cfg["log_every"] == 0 or step == total:
            rec = {
                "step": step,
                "loss": running / n_running,
                "lr": optimizer.param_groups[0]["lr"],
                "sec_per_step": (time.time() - t0) / (step - start),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            running, n_running = 0.0, 0
        finished = step == total or train_minutes() >= budget
        if val_pairs and (step % cfg["val"]["every"] == 0 or finished):
            t_val = time.time()
            rec = {
                "step": step,
                "train_minutes": round(train_minutes(), 3),
                "val_psnr": validate(ema.module if ema is not None else model, val_pairs, path),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            val_seconds += time.time() - t_val
        out_of_time = time_limit is not None and time.time() - t0 > time_limit
        if step % cfg["checkpoint"]["every"] == 0 or finished or out_of_time:
            checkpoint(step)
        if out_of_time:
            break
    log.close()
    return {
        "steps": step,
        "done": step >= total or train_minutes() >= budget,
        "seconds": time.time() - t0,
        "out_dir": str(out_dir),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: train from a YAML config (``--resume`` continues, ``--smoke`` is a CPU check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--smoke", action="store_true", help="a few tiny CPU steps")
    parser.add_argument("--out", type=Path, help="run folder (default runs/NAME)")
    parser.add_argument("--time-limit", type=float, help="checkpoint and stop after N seconds")
    parser.add_argument("--init", type=Path, help="warm-start weights (.safetensors or .pt)")
    parser.add_argument("--minutes", type=float, help="the cosine's wall-time budget")
    parser.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, smoke=args.smoke)
    if args.minutes:
        cfg["optim"]["minutes"] = args.minutes
    cfg["threads"] = args.threads or cfg["threads"]
    if args.init:
        cfg["model"]["init"] = str(args.init)
    out = args.out or Path("runs") / (cfg["name"] + ("-smoke" if args.smoke else ""))
    command = shlex.join(["python", "-m", "training.train", *(argv or sys.argv[1:])])
    summary = train(cfg, out, resume=args.resume, command=command, time_limit=args.time_limit)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
