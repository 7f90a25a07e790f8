"""Synthetic degradations of clean photos, and synthetic test videos with known motion.

Why synthetic: paired real data for deblur/derain/defocus/denoise is scarce, so training
pairs are made on the fly from clean photos. Every function takes a ``torch.Generator``
and is deterministic given it; they work on float tensors ``(B, 3, H, W)`` in sRGB
``[0, 1]`` on any device, so degradation can run next to the model on a GPU.
Light is mixed (blur averages, rain, defocus, haze) in linear light, as a sensor would,
and converted back to sRGB afterwards. Noise and low light are made on the raw side of a
synthetic camera (Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising"):
the photo is unprocessed to a Bayer mosaic, exposed and given Poisson-Gaussian sensor
noise there, and processed back, so the noise is signal-dependent and correlated across
pixels and channels as in real footage.

One degradation model a module (motion_blur, rain, heavy_rain, defocus, camera, noise, low_light,
codec); ``pairs`` makes a task's training pair, ``video`` the synthetic test clips. Their
functions are importable from ``training.degrade`` itself.
"""

from training.degrade.camera import (
    Camera,
    noise_levels,
    poisson_gaussian,
    process,
    random_camera,
    unprocess,
)
from training.degrade.codec import codec_compress, maybe_compress
from training.degrade.common import (
    center_crop,
    linear_to_srgb,
    quantize8,
    srgb_to_linear,
)
from training.degrade.defocus import defocus, disk_kernel
from training.degrade.heavy_rain import add_heavy_rain
from training.degrade.low_light import low_light
from training.degrade.motion_blur import CameraPath, motion_blur, random_blur_path, render_path
from training.degrade.noise import camera_noise, gaussian_noise
from training.degrade.pairs import KINDS, degrade, downscale_bicubic
from training.degrade.rain import add_rain, add_sparse_rain, streak_kernel
from training.degrade.video import load_photo, make_test_video, read_video, video_path, write_video

__all__ = [
    "KINDS",
    "Camera",
    "CameraPath",
    "add_heavy_rain",
    "add_rain",
    "add_sparse_rain",
    "camera_noise",
    "center_crop",
    "codec_compress",
    "defocus",
    "degrade",
    "disk_kernel",
    "downscale_bicubic",
    "gaussian_noise",
    "linear_to_srgb",
    "load_photo",
    "low_light",
    "make_test_video",
    "maybe_compress",
    "motion_blur",
    "noise_levels",
    "poisson_gaussian",
    "process",
    "quantize8",
    "random_blur_path",
    "random_camera",
    "read_video",
    "render_path",
    "srgb_to_linear",
    "streak_kernel",
    "unprocess",
    "video_path",
    "write_video",
]
