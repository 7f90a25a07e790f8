"""Synthetic test videos: a photo filmed along a known camera path, degraded frame by frame."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from torch import Tensor

from training.degrade.common import linear_to_srgb, quantize8, srgb_to_linear
from training.degrade.defocus import defocus
from training.degrade.low_light import low_light
from training.degrade.motion_blur import CameraPath, random_blur_path, render_path
from training.degrade.noise import camera_noise
from training.degrade.pairs import KINDS, downscale_bicubic
from training.degrade.rain import add_rain


# ------------------------------------------------------------------- synthetic video
def load_photo(path: str | Path) -> Tensor:
    """Read a photo as ``(1, 3, H, W)`` float sRGB in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def video_path(
    frames: int,
    photo_hw: tuple[int, int],
    out_hw: tuple[int, int],
    gen: torch.Generator,
) -> CameraPath:
    """A hand-held pan over a photo lasting ``frames`` frames (t in frame units).

    Smooth drift plus a gentle shake; amplitudes are bounded so the view stays on the
    photo (no reflected borders in the clip).
    """
    margin_y = (photo_hw[0] - out_hw[0] * 1.06) / 2
    margin_x = (photo_hw[1] - out_hw[1] * 1.06) / 2
    if min(margin_x, margin_y) < 4:
        raise ValueError(f"photo {photo_hw} too small for a {out_hw} view with motion")
    span = max(frames - 1, 1) / 2
    r = torch.rand(4, 4, generator=gen, device=gen.device) * 2 - 1
    # Drift of up to ~60% of the free margin, from one side of the centre to the other.
    drift = torch.tensor([margin_x, margin_y, 0.03, 0.02]) * 0.6 / span
    coef = torch.zeros(1, 4, 3)
    coef[0, :, 0] = drift * r[0]
    coef[0, :, 1] = drift * r[1] * 0.3 / span
    shake = torch.zeros(1, 4, 3)
    shake[0, :, 0] = torch.tensor([2.0, 2.0, 0.003, 0.002]) * r[2].abs()
    shake[0, :, 1] = 0.3 + 0.4 * r[3].abs()  # rad per frame: a slow wobble
    shake[0, :, 2] = torch.rand(4, generator=gen, device=gen.device) * 2 * math.pi
    return CameraPath(coef, shake)


def _degrade_frame(
    frame: Tensor,
    kind: str,
    gen: torch.Generator,
    scene: torch.Generator,
    sub_frames: Tensor | None,
) -> Tensor:
    """One frame of a clip: ``scene`` draws what a clip keeps (camera, exposure, focus),
    ``gen`` what changes every frame (noise, rain). ``clean`` leaves the frame as it
    is: footage with nothing to restore, for the no-harm checks (a deblurrer on sharp
    footage, a derainer on a dry clip)."""
    if kind == "clean":
        return frame
    if kind in ("deblur", "shake"):
        assert sub_frames is not None
        return linear_to_srgb(srgb_to_linear(sub_frames).mean(0, keepdim=True))
    if kind == "denoise":
        return camera_noise(frame, scene, noise_gen=gen)
    if kind == "derain":
        return add_rain(frame, gen)
    if kind == "defocus":
        return defocus(frame, scene)
    if kind == "lowlight":
        return low_light(frame, scene, noise_gen=gen)
    if kind == "superres":
        return downscale_bicubic(frame)
    raise ValueError(f"unknown degradation {kind!r} (known: clean, shake, {', '.join(KINDS)})")


def make_test_video(
    photo: str | Path | Tensor,
    out_clean: str | Path,
    out_degraded: str | Path,
    kind: str,
    frames: int = 24,
    size: tuple[int, int] = (320, 192),
    fps: int = 24,
    seed: int = 0,
    *,
    codec: str = "ffv1",
) -> Tensor:
    """Write a clean clip (camera path over a photo) and its degraded twin; return the path.

    ``size`` is (width, height). Returns the camera states ``(frames, 4)``
    (``dx, dy, rot, log_zoom`` about the photo centre, see :class:`CameraPath`) so that
    measurements can undo the known motion. Motion blur integrates 9 sub-frames over
    the shutter interval (half the frame time): for ``deblur`` the pan's own motion (a
    slow pan: nearly sharp footage), for ``shake`` that plus a hand shaking over each
    exposure, drawn fresh every frame from the training blur's camera-path model
    (:func:`random_blur_path`: blurry footage, a quarter of its frames steady). The
    other kinds keep one camera, exposure and focus for the whole clip, as footage
    does, with fresh rain and noise in every frame;
    ``superres`` writes the degraded clip at half the size (``size`` must be even).
    ``codec`` ``ffv1`` is lossless RGB (bgr0) (``.mkv``); ``libx264`` writes yuv420p, BT.709.
    """
    gen = torch.Generator().manual_seed(seed)
    src = photo if isinstance(photo, Tensor) else load_photo(photo)
    w, h = size
    path = video_path(frames, (src.shape[-2], src.shape[-1]), (h, w), gen)
    t = torch.arange(frames, dtype=torch.float32) - (frames - 1) / 2
    states = path.at(t)[0]
    clean = render_path(src, states[None], (h, w))[0]  # (T, 3, h, w)
    scene_state = torch.Generator().manual_seed(seed + 1).get_state()
    degraded = []
    for k in range(frames):
        sub = None
        if kind in ("deblur", "shake"):
            exposure = path.at(t[k] + torch.linspace(-0.25, 0.25, 9))
            if kind == "shake":
                hand = random_blur_path(1, gen).at(torch.linspace(-0.5, 0.5, 9))
                exposure = exposure + hand - hand.mean(1, keepdim=True)
            sub = render_path(src, exposure, (h, w))[0]
        scene = torch.Generator()
        scene.set_state(scene_state)  # the same draws every frame
        degraded.append(quantize8(_degrade_frame(clean[k : k + 1], kind, gen, scene, sub)))
    write_video(out_clean, clean, fps, codec=codec)
    write_video(out_degraded, torch.cat(degraded), fps, codec=codec)
    return states


def write_video(path: str | Path, frames: Tensor, fps: int, *, codec: str = "ffv1") -> None:
    """Encode ``(T, 3, H, W)`` float frames with PyAV (ffv1 RGB lossless, or libx264)."""
    arr = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy()
    with av.open(str(path), "w") as box:
        stream = box.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = arr.shape[1:3]
        if codec == "ffv1":
            stream.pix_fmt = "bgr0"
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "12"}
            stream.codec_context.colorspace = 1  # bt709 matrix
            stream.codec_context.color_range = 1  # tv range
            stream.codec_context.color_primaries = 1
            stream.codec_context.color_trc = 1
        for rgb in arr:
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if codec == "ffv1":
                vf = vf.reformat(format="bgr0")
            else:
                vf = vf.reformat(format="yuv420p", dst_colorspace="itu709")
            box.mux(stream.encode(vf))
        box.mux(stream.encode(None))


def read_video(path: str | Path) -> Tensor:
    """Decode a video to ``(T, 3, H, W)`` float sRGB frames."""
    with av.open(str(path)) as box:
        arr = np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
