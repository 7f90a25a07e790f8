"""Codec round trips: the blocking and chroma loss that compressed footage arrives with."""

from __future__ import annotations

import io

import av
import numpy as np
import torch
from torch import Tensor


def codec_compress(img: Tensor, crf: int, *, codec: str = "libx264") -> Tensor:
    """Round-trip each image through a video codec (yuv420p, one intra frame).

    Why: restored footage arrives codec-compressed, with blocking and chroma loss that
    pure noise models miss. Runs on the CPU (PyAV); returns a tensor on ``img``'s device.
    """
    out = []
    for frame in (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy():
        h, w = frame.shape[:2]
        padded = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        buf = io.BytesIO()
        with av.open(buf, "w", format="matroska") as box:
            stream = box.add_stream(codec, rate=25)
            stream.width, stream.height = padded.shape[1], padded.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            vf = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")
            box.mux(stream.encode(vf))
            box.mux(stream.encode(None))
        buf.seek(0)
        with av.open(buf) as box:
            dec = next(box.decode(video=0)).to_ndarray(format="rgb24")
        out.append(dec[:h, :w])
    arr = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255
    return arr.to(img.device)


def maybe_compress(
    img: Tensor, gen: torch.Generator, prob: float, crf: tuple[int, int] = (18, 32)
) -> Tensor:
    """Round-trip a random share ``prob`` of the batch through x264 at a random CRF.

    Why: real footage reaches the network codec-compressed, which smears thin streaks
    and fine blur into blocks; a network trained only on pristine degradations leaves
    them in (the demo clip, an x264 file, kept most of its rain)."""
    if prob <= 0:
        return img
    pick = torch.rand(img.shape[0], generator=gen, device=gen.device) < prob
    out = img.clone()
    for i in pick.nonzero().flatten().tolist():
        level = int(torch.randint(crf[0], crf[1] + 1, (1,), generator=gen, device=gen.device))
        out[i : i + 1] = codec_compress(img[i : i + 1], level).to(img.device)
    return out
