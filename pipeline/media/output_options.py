"""Which output settings a config may give: none that reads or writes another file.

FFmpeg encoders and muxers take options that name files: libx264's ``stats`` with
``flags: +pass1`` overwrote an unrelated file; x265's ``csv`` and ``analysis-save``
write files, its ``film-grain`` and ``zonefile`` read them; the ``segment``, ``hls``,
``image2`` and ``tee`` muxers write files beside (or instead of) the output. A config is
data, so encoder options pass an allow-list of tuning options, the ``*-params`` strings
are split and checked key by key, and only muxers that write one file are used.
"""

from __future__ import annotations

#: Encoder options that only tune the encoding (rate control, GOP, speed, profile).
ENCODER_OPTIONS = frozenset(
    {
        # common (libavcodec) and x264 / x265
        "crf", "qp", "b", "maxrate", "minrate", "bufsize", "g", "keyint_min", "bf", "refs",
        "preset", "tune", "profile", "level", "threads", "qmin", "qmax", "sc_threshold",
        "aq-mode", "aq-strength", "psy", "psy-rd", "rc-lookahead", "weightp", "weightb",
        "trellis", "forced-idr", "global_quality", "qscale", "mbd", "x264-params",
        "x265-params",
        # libvpx (VP9), SVT-AV1, libaom
        "deadline", "cpu-used", "row-mt", "tile-columns", "tile-rows", "lag-in-frames",
        "auto-alt-ref", "arnr-maxframes", "arnr-strength", "lossless", "svtav1-params",
        # FFV1, ProRes
        "slices", "slicecrc", "context", "coder", "vendor", "bits_per_mb", "quant_mat",
        "mbs_per_slice",
    }
)  # fmt: skip

#: Keys allowed inside each ``*-params`` string (``key=value:key=value``), per encoder:
#: one name can mean a number in one encoder and a file in another (``film-grain``).
PARAMS_KEYS = {
    "x264-params": frozenset(
        {
            "log-level", "aq-mode", "aq-strength", "psy-rd", "psy", "deblock", "ref",
            "bframes", "b-adapt", "b-pyramid", "keyint", "min-keyint", "scenecut",
            "rc-lookahead", "me", "subme", "merange", "trellis", "no-fast-pskip",
            "no-dct-decimate", "crf", "qp", "vbv-maxrate", "vbv-bufsize", "weightb",
            "weightp", "8x8dct", "mixed-refs", "direct", "partitions", "nr", "fast-decode",
            "zerolatency", "open-gop", "colorprim", "transfer", "colormatrix", "range",
            "chromaloc", "threads", "lookahead-threads", "sliced-threads", "mbtree",
            "no-mbtree", "cabac", "no-cabac", "deadzone-inter", "deadzone-intra",
        }
    ),
    "x265-params": frozenset(
        {
            "log-level", "aq-mode", "aq-strength", "psy-rd", "psy-rdoq", "deblock", "ref",
            "bframes", "b-adapt", "b-pyramid", "keyint", "min-keyint", "scenecut",
            "rc-lookahead", "me", "subme", "merange", "crf", "qp", "vbv-maxrate",
            "vbv-bufsize", "sao", "no-sao", "selective-sao", "strong-intra-smoothing",
            "no-strong-intra-smoothing", "rd", "ctu", "tu-intra-depth", "tu-inter-depth",
            "limit-refs", "limit-modes", "rect", "amp", "wpp", "pools", "frame-threads",
            "cutree", "no-cutree", "open-gop", "no-open-gop", "weightb", "weightp",
            "hdr10", "hdr10-opt", "repeat-headers", "colorprim", "transfer", "colormatrix",
            "range", "master-display", "max-cll", "chromaloc", "tier", "profile", "level-idc",
            "lossless", "tune", "preset", "fast-decode", "zerolatency",
        }
    ),
    "svtav1-params": frozenset(
        {
            "preset", "crf", "tune", "film-grain", "film-grain-denoise", "enable-overlays",
            "scd", "enable-qm", "qm-min", "qm-max", "enable-tf", "lp", "fast-decode",
            "irefresh-type", "keyint", "enable-variance-boost", "variance-boost-strength",
            "sharpness", "aq-mode", "lookahead", "tile-rows", "tile-columns",
        }
    ),
}  # fmt: skip

#: Muxers that write exactly one file (or stream) and read nothing else.
SINGLE_FILE_MUXERS = frozenset(
    {
        "matroska", "webm", "mp4", "mov", "avi", "nut", "mpegts", "mxf", "flv", "ogg",
        "ismv", "ipod", "3gp", "3g2", "psp", "f4v", "asf", "ivf", "h264", "hevc",
        "yuv4mpegpipe",
    }
)  # fmt: skip


def check_encoder_options(options: dict[str, str]) -> None:
    """Raise ``ValueError`` naming the first option (or ``*-params`` key) not allowed."""
    for name, value in options.items():
        if name not in ENCODER_OPTIONS:
            raise ValueError(
                f"encoder option {name!r} is not allowed (options that may read or write "
                "files are refused; allowed: " + ", ".join(sorted(ENCODER_OPTIONS)) + ")"
            )
        keys = PARAMS_KEYS.get(name)
        if keys is None:
            continue
        for pair in filter(None, str(value).split(":")):
            key = pair.split("=", 1)[0].strip()
            if key not in keys:
                raise ValueError(
                    f"{name} key {key!r} is not allowed (keys that may read or write files "
                    "are refused; allowed: " + ", ".join(sorted(keys)) + ")"
                )


def check_muxer(name: str) -> None:
    """Raise ``ValueError`` if muxer ``name`` may write more than the one output file."""
    if name not in SINGLE_FILE_MUXERS:
        raise ValueError(
            f"container {name!r} is not allowed (it may write other files); use one of "
            + ", ".join(sorted(SINGLE_FILE_MUXERS))
        )
