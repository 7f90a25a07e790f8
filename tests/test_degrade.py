"""Synthetic degradations: deterministic, physically sensible, and held-out data stays out."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from training import degrade as D
from training.degrade.camera import _inverse_smoothstep
from training.metrics import flicker, psnr
from training.splits import DATA_ROOT, heldout_photos, is_held_out, train_photos


def _image(seed: int = 0, size: tuple[int, int] = (48, 64)) -> torch.Tensor:
    """A smooth random colour image with some edges (a stand-in photo)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(2, 3, 6, 8, generator=g)
    img = torch.nn.functional.interpolate(low, size=size, mode="bicubic", align_corners=False)
    return img.clamp(0, 1)


@pytest.mark.parametrize("kind", D.KINDS)
def test_degrade_is_deterministic_and_in_range(kind: str) -> None:
    src = _image(size=(80, 96))
    a, ta = D.degrade(src, kind, torch.Generator().manual_seed(3), (48, 64))
    b, tb = D.degrade(src, kind, torch.Generator().manual_seed(3), (48, 64))
    c, _ = D.degrade(src, kind, torch.Generator().manual_seed(4), (48, 64))
    scale = 2 if kind == "superres" else 1  # the 2x input is half the target's size
    assert ta.shape == (2, 3, 48, 64) and a.shape == (2, 3, 48 // scale, 64 // scale)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert torch.equal(a, c) if kind == "superres" else not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, D.quantize8(a))  # degraded inputs are 8-bit like real frames
    assert torch.equal(ta, D.center_crop(src, (48, 64)))


def test_srgb_round_trip() -> None:
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(D.linear_to_srgb(D.srgb_to_linear(x)), x, atol=1e-5)


def test_zero_motion_renders_the_central_crop() -> None:
    src = _image(size=(60, 70))
    out = D.render_path(src, torch.zeros(2, 3, 4), (40, 50))
    assert torch.allclose(out[:, 1], D.center_crop(src, (40, 50)), atol=1e-5)


def test_render_path_translation_moves_content() -> None:
    src = torch.zeros(1, 3, 41, 41)
    src[..., 20, 25] = 1  # a dot 5 px right of the centre
    states = torch.tensor([[[5.0, 0.0, 0.0, 0.0]]])  # look 5 px to the right
    out = D.render_path(src, states, (41, 41))[0, 0]
    assert out[0, 20, 20] == pytest.approx(1.0, abs=1e-5)


def test_motion_blur_path_is_bounded_and_centred() -> None:
    path = D.random_blur_path(16, torch.Generator().manual_seed(0), max_shift=10)
    states = path.at(torch.linspace(-0.5, 0.5, 15))
    extent = states.amax(1) - states.amin(1)
    assert (extent[:, :2] <= 10 + 1e-4).all()
    assert torch.allclose(states[:, 7], torch.zeros(16, 4), atol=1e-6)  # zero at t = 0


def test_motion_blur_paths_include_steady_hands() -> None:
    """A share of the paths stays nearly still: trained only on shaky paths, a deblurrer
    sharpened nearly sharp frames and lost 3.8 dB on footage through the pipeline."""

    def extents(steady: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        path = D.random_blur_path(400, gen, max_shift=20, steady=steady)
        states = path.at(torch.linspace(-0.5, 0.5, 15))
        return (states.amax(1) - states.amin(1))[:, :2].amax(1)  # pixels of translation

    assert (extents(0.25) <= 2.0).float().mean() > 0.2
    assert (extents(0.0) <= 2.0).float().mean() < 0.1


def test_motion_blur_target_is_where_the_blur_is_centred() -> None:
    """The sharp target sits at the blur's centroid: with the path's middle sub-frame as
    target, a curved path's blur was off it by up to ~4 px in a direction the network
    cannot see, so the best it could learn was to leave the blur (+0.06 dB held out)."""
    src = torch.zeros(32, 3, 81, 81)
    src[..., 40, 40] = 1  # a point light at the centre of every sample
    blurry, sharp = D.motion_blur(src, (41, 41), torch.Generator().manual_seed(0), max_shift=12)
    assert sharp[0, 0, 20, 20] == 1
    light = D.srgb_to_linear(blurry)[:, 0]  # (B, h, w): the point's energy over the exposure
    coords = torch.arange(41, dtype=torch.float32)
    mass = light.sum((1, 2))
    cy = (light.sum(2) * coords).sum(1) / mass
    cx = (light.sum(1) * coords).sum(1) / mass
    spread = (light > 1e-3).sum((1, 2))
    assert (spread > 4).any()  # real blurs, not only steady hands
    assert torch.allclose(cy, torch.full_like(cy, 20.0), atol=0.1)
    assert torch.allclose(cx, torch.full_like(cx, 20.0), atol=0.1)


def test_motion_blur_blurs() -> None:
    src = _image(size=(96, 96))
    blurry, sharp = D.motion_blur(src, (48, 48), torch.Generator().manual_seed(1), max_shift=12)
    grad = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert grad(blurry) < grad(sharp)


def test_rain_only_adds_light_without_haze() -> None:
    clean = _image()
    rainy = D.add_rain(clean, torch.Generator().manual_seed(0), haze_prob=0)
    assert (rainy >= clean - 1e-5).all()
    assert (rainy - clean).abs().max() > 0.1  # visible streaks


def test_rain_composites_as_light_or_as_published_sets() -> None:
    clean = _image()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    screen = D.add_rain(clean, gen(), haze_prob=0, additive_prob=0)
    added = D.add_rain(clean, gen(), haze_prob=0, additive_prob=1)
    streaks = added - clean
    assert (streaks > 0.05).any()
    # O = clip(B + S): where nothing saturates, the streak layer is the same on every
    # background; a screen blend in linear light lifts dark pixels less than that
    hit = (streaks > 0.05) & (added < 0.99)
    assert ((screen - clean)[hit] <= streaks[hit] + 1e-5).all()
    assert ((screen - clean)[hit] < streaks[hit] - 1e-3).any()


def test_heavy_rain_is_streak_layers_under_a_veil() -> None:
    clean = _image()
    heavy = D.add_heavy_rain(clean, torch.Generator().manual_seed(0))
    again = D.add_heavy_rain(clean, torch.Generator().manual_seed(0))
    assert torch.equal(heavy, again) and heavy.min() >= 0 and heavy.max() <= 1
    light = D.add_rain(clean, torch.Generator().manual_seed(0))
    assert (heavy - clean).abs().mean() > 2 * (light - clean).abs().mean()
    # accumulation mixes in airlight: contrast falls, dark pixels rise
    assert heavy.std() < clean.std()
    dark = clean < 0.2
    assert heavy[dark].mean() > clean[dark].mean() + 0.1


def test_sparse_rain_is_one_grey_layer_added_to_the_values() -> None:
    """The published sets' rain: streaks that touch a minority of pixels, the same amount
    added to every channel (grey, ``O = clip(B + S)``), never a veil over the frame."""
    clean = _image()
    sparse = D.add_sparse_rain(clean, torch.Generator().manual_seed(0))
    assert torch.equal(sparse, D.add_sparse_rain(clean, torch.Generator().manual_seed(0)))
    streaks = sparse - clean
    assert (streaks > -1e-5).all()
    touched = (streaks.amax(1) > 0.02).float().mean(dim=(1, 2))
    assert (touched > 0).all() and (touched < 0.4).all()
    unclipped = (sparse < 0.999).all(1, keepdim=True).expand_as(sparse)
    grey = (streaks - streaks.mean(1, keepdim=True)).abs()
    assert grey[unclipped].max() < 1e-5
    light = D.add_rain(clean, torch.Generator().manual_seed(0))
    assert streaks.mean() < (light - clean).abs().mean()


def test_maybe_compress_round_trips_the_chosen_share() -> None:
    x = D.quantize8(_image(size=(64, 64))[:1].repeat(6, 1, 1, 1))
    assert torch.equal(D.maybe_compress(x, torch.Generator().manual_seed(0), 0.0), x)
    every = D.maybe_compress(x, torch.Generator().manual_seed(0), 1.0)
    assert every.shape == x.shape
    changed = [not torch.equal(a, b) for a, b in zip(every, x, strict=True)]
    assert all(changed)  # chroma subsampling alone changes a textured image
    again = D.maybe_compress(x, torch.Generator().manual_seed(0), 1.0)
    assert torch.equal(every, again)
    some = D.maybe_compress(x, torch.Generator().manual_seed(1), 0.5)
    kept = sum(torch.equal(a, b) for a, b in zip(some, x, strict=True))
    assert 0 < kept < 6


def test_streak_kernel_orientation() -> None:
    vertical = D.streak_kernel(9, 1.0, 0.0, 11)
    assert vertical[:, 5].sum() > 5 * vertical[5, :].sum() / 2
    assert vertical.max() == pytest.approx(1.0, abs=1e-6)


def test_disk_kernel_is_normalised_and_round() -> None:
    k = D.disk_kernel(3.0, 9)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    assert k[4, 4] > 0 and k[0, 0] == 0


def test_gaussian_noise_level() -> None:
    x = torch.full((1, 3, 64, 64), 0.5)
    y = D.gaussian_noise(x, 25 / 255, torch.Generator().manual_seed(0))
    assert float((y - x).std()) == pytest.approx(25 / 255, rel=0.05)


def _linear(x: torch.Tensor) -> torch.Tensor:
    """Undo tone curve and gamma: back to light, where raw noise and exposure are linear."""
    return D.srgb_to_linear(_inverse_smoothstep(x))


def _grey(level: float, n: int = 8, size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    return torch.full((n, 3, *size), level)


def test_unprocess_then_process_returns_the_input() -> None:
    g = torch.Generator().manual_seed(0)
    cams = D.random_camera(64, torch.Generator().manual_seed(1))
    # Flat mid-tone colours, one camera each, odd size: the colour pipeline inverts exactly
    flat = (0.15 + 0.7 * torch.rand(64, 3, 1, 1, generator=g)).expand(-1, -1, 7, 9)
    assert (D.process(D.unprocess(flat, cams), cams) - flat).abs().max() < 1 / 255
    # Smooth content (bicubic from 3x4 points): bilinear demosaicing is close
    low = 0.2 + 0.6 * torch.rand(64, 3, 3, 4, generator=g)
    smooth = F.interpolate(low, size=(33, 47), mode="bicubic", align_corners=True).clamp(0, 1)
    err = (D.process(D.unprocess(smooth, cams), cams) - smooth).abs()
    assert err.mean() < 1 / 255 and err[..., 2:-2, 2:-2].quantile(0.99) < 2 / 255
    # Noise-free, camera_noise returns the input even where demosaicing would blur
    texture = 0.1 + 0.8 * torch.rand(4, 3, 31, 45, generator=g)
    quiet = D.camera_noise(texture, torch.Generator().manual_seed(2), shot=(1e-9, 1e-9))
    assert (quiet - D.quantize8(texture)).abs().max() <= 1 / 255 + 1e-6


def test_camera_noise_is_signal_dependent_and_correlated() -> None:
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731  (same cameras and levels)
    dark = D.camera_noise(_grey(0.2), gen(), shot=(3e-3, 3e-3))
    bright = D.camera_noise(_grey(0.85), gen(), shot=(3e-3, 3e-3))

    def var_per_light(x: torch.Tensor) -> torch.Tensor:
        lin = _linear(x)  # light: a linear function of the raw signal
        return (lin.var((2, 3)) / lin.mean((2, 3))).mean(1)

    # Shot noise: the brighter patch is noisier, its variance in light proportional to
    # the light (Poisson). White noise on the display values, seen in light, is not.
    assert (_linear(bright).std((2, 3)) > 2 * _linear(dark).std((2, 3))).all()
    ratio = var_per_light(bright) / var_per_light(dark)
    assert (ratio > 0.75).all() and (ratio < 1.25).all()
    white = [D.gaussian_noise(_grey(v), 0.03, gen()) for v in (0.2, 0.85)]
    assert (var_per_light(white[1]) / var_per_light(white[0]) > 1.5).all()

    def neighbour_corr(x: torch.Tensor) -> torch.Tensor:
        r = x - x.mean((2, 3), keepdim=True)
        return (r[..., 1:] * r[..., :-1]).mean((2, 3)) / r.pow(2).mean((2, 3))

    # Demosaicing spreads each photosite's noise over its neighbours; white noise is not
    assert (neighbour_corr(bright) > 0.2).all()
    assert neighbour_corr(white[1]).abs().max() < 0.1


def test_camera_noise_is_deterministic_8bit_and_varies_per_sample() -> None:
    img = 0.1 + 0.8 * _image(size=(33, 47))  # odd sizes: the Bayer pattern is cut off
    a = D.camera_noise(img, torch.Generator().manual_seed(3))
    assert a.shape == img.shape
    assert torch.equal(a, D.camera_noise(img, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, D.camera_noise(img, torch.Generator().manual_seed(4)))
    assert a.min() >= 0 and a.max() <= 1 and torch.equal(a, D.quantize8(a))
    levels = (D.camera_noise(_grey(0.5, 8), torch.Generator().manual_seed(0)) - 0.5).std((1, 2, 3))
    assert levels.max() > 2 * levels.min()  # each sample has its own noise level


def test_low_light_darkens_by_the_exposure_and_is_relatively_noisier() -> None:
    grey = _grey(0.5, 16)
    # Nearly noise-free: light falls by the exposure factor, 1/8 to 1/40
    quiet = D.low_light(grey, torch.Generator().manual_seed(0), shot=(1e-5, 1e-5))
    ratio = _linear(quiet).mean((1, 2, 3)) / _linear(grey).mean((1, 2, 3))
    assert (ratio > 0.02).all() and (ratio < 0.15).all()
    assert ratio.max() > 1.5 * ratio.min()  # a random exposure per sample
    assert (quiet.mean((1, 2, 3)) < 0.3 * grey.mean((1, 2, 3))).all()

    # Same sensor level, fewer photons: relative noise grows as 1/sqrt(exposure)
    def rel_noise(x: torch.Tensor) -> torch.Tensor:
        lin = _linear(x)
        return lin.std((2, 3)).mean(1) / lin.mean((1, 2, 3))

    level = (2e-3, 2e-3)
    dim = rel_noise(D.low_light(grey, torch.Generator().manual_seed(1), shot=level))
    lit = rel_noise(D.camera_noise(grey, torch.Generator().manual_seed(1), shot=level))
    assert dim.median() > 2 * lit.median()
    assert (rel_noise(D.low_light(grey, torch.Generator().manual_seed(2))) > 0.1).all()


def test_codec_round_trip_is_close() -> None:
    # Grey content, so 4:2:0 chroma subsampling costs nothing; odd sizes are padded for
    # 4:2:0 and cropped back.
    x = _image(size=(33, 47)).mean(1, keepdim=True).expand(-1, 3, -1, -1)
    y = D.codec_compress(x, crf=12)
    assert y.shape == x.shape
    assert psnr(y, x) > 35
    assert psnr(D.codec_compress(x, crf=40), x) < psnr(y, x)


def test_test_video_is_lossless_and_motion_is_known(tmp_path: Path) -> None:
    photo = _image(size=(160, 200))[:1]
    clean_p, deg_p = tmp_path / "c.mkv", tmp_path / "d.mkv"
    states = D.make_test_video(photo, clean_p, deg_p, "denoise", frames=6, size=(96, 64), seed=1)
    clean, noisy = D.read_video(clean_p), D.read_video(deg_p)
    assert states.shape == (6, 4) and clean.shape == noisy.shape == (6, 3, 64, 96)
    expected = D.quantize8(D.render_path(photo, states[None], (64, 96))[0])
    assert torch.equal(clean, expected)  # ffv1 RGB is lossless
    compensated = flicker(clean, states, border=8)
    raw = 255 * float((clean[1:] - clean[:-1]).abs().mean())
    assert compensated < 0.5 * raw
    assert flicker(noisy, states, border=8) > compensated + 2


def test_clean_test_video_is_its_own_twin(tmp_path: Path) -> None:
    """``clean`` footage (the no-harm checks: sharp footage through a deblurrer) is the
    clean clip itself, frame for frame."""
    photo = _image(size=(160, 200))[:1]
    clean_p, deg_p = tmp_path / "c.mkv", tmp_path / "d.mkv"
    D.make_test_video(photo, clean_p, deg_p, "clean", frames=4, size=(96, 64), seed=2)
    assert torch.equal(D.read_video(clean_p), D.read_video(deg_p))


def test_shaky_footage_is_blurrier_than_the_pan_alone(tmp_path: Path) -> None:
    """``shake`` (blurry footage for the deblur pipeline figure) adds a hand shaking over
    each exposure to the pan's own blur: further from the sharp clip, different in every
    frame, and the same clip again for the same seed."""
    photo = _image(size=(200, 240))[:1] + 0.3 * (torch.rand(1, 1, 200, 240) > 0.5)
    photo = photo.clamp(0, 1)

    def clip(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        clean_p, deg_p = tmp_path / f"c-{kind}.mkv", tmp_path / f"d-{kind}.mkv"
        D.make_test_video(photo, clean_p, deg_p, kind, frames=8, size=(96, 64), seed=4)
        return D.read_video(clean_p), D.read_video(deg_p)

    clean, pan = clip("deblur")
    same_clean, shaky = clip("shake")
    assert torch.equal(clean, same_clean)
    per_frame = [psnr(shaky[k], clean[k]) for k in range(8)]
    assert sum(per_frame) / 8 < psnr(pan, clean) - 3
    assert max(per_frame) - min(per_frame) > 1  # steady and shaky frames both occur
    assert torch.equal(shaky, clip("shake")[1])


def test_test_video_keeps_one_exposure_with_fresh_noise(tmp_path: Path) -> None:
    """A dark clip is shot at one exposure by one camera: its frames' brightness must
    not jump (it did, each frame drawing its own exposure, and a model's video flicker
    then measured the test clip, not the model); the noise still changes every frame."""
    photo = torch.full((1, 3, 160, 200), 0.5)
    clean_p, deg_p = tmp_path / "c.mkv", tmp_path / "d.mkv"
    D.make_test_video(photo, clean_p, deg_p, "lowlight", frames=6, size=(96, 64), seed=3)
    dark = D.read_video(deg_p)
    means = dark.mean((1, 2, 3))
    assert float(means.max() - means.min()) < 0.1 * float(means.mean())
    assert float((dark[1:] - dark[:-1]).abs().mean()) > 0  # fresh noise per frame


@pytest.mark.skipif(not (DATA_ROOT / "clean").is_dir(), reason="shared data not present")
def test_held_out_photos_never_train() -> None:
    train = set(train_photos())
    held = [p for g in ("kodak24", "set5", "cbsd68") for p in heldout_photos(g)]
    assert len(held) == 24 + 2 + 44
    assert train.isdisjoint(held)
    assert all(is_held_out(p) for p in held)
    assert not any(is_held_out(p) for p in list(train)[:50])
    assert math.isclose(len(train), 667 - len(held))
