"""Attached pictures (cover art, Matroska image attachments) on their way to the output.

FFmpeg presents both as a video stream holding one picture (``attached_pic``). Matroska
keeps them as attachments, MP4 as cover art; other containers have no place for them.
"""

from __future__ import annotations

from pipeline.media.probe import StreamInfo, open_input

#: Containers that keep an ``attached_pic`` stream as cover art.
COVER_ART_FORMATS = frozenset({"mp4", "ipod"})
MIMETYPES = {"png": "image/png", "mjpeg": "image/jpeg", "bmp": "image/bmp", "gif": "image/gif",
             "webp": "image/webp", "tiff": "image/tiff"}  # fmt: skip
EXTENSIONS = {"png": "png", "mjpeg": "jpg", "bmp": "bmp", "gif": "gif", "webp": "webp",
              "tiff": "tiff"}  # fmt: skip


def picture_bytes(path: str, index: int) -> bytes | None:
    """The picture of stream ``index`` (the demuxer hands it out before any other packet)."""
    with open_input(path) as container:
        for packet in container.demux(container.streams[index]):
            if packet.size:
                return bytes(packet)
    return None


def attachment_name(info: StreamInfo) -> tuple[str, str]:
    """File name and MIME type to store a picture under as a Matroska attachment."""
    codec = info.codec or ""
    name = info.filename or f"cover{info.index}.{EXTENSIONS.get(codec, 'bin')}"
    mimetype = info.metadata.get("mimetype") or MIMETYPES.get(codec, "application/octet-stream")
    return name, mimetype
