"""Small files of every kind an upload may be, made here (no fixtures on disk)."""

from __future__ import annotations

import io
import zipfile

from PIL import Image


def image(fmt: str, size: tuple[int, int] = (40, 20), color: str = "red", **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt, **options)
    return out.getvalue()


def png(size: tuple[int, int] = (40, 20)) -> bytes:
    return image("PNG", size)


def jpeg_rotated() -> bytes:
    """A 40×20 JPEG whose EXIF says "rotate 90° clockwise to show" (orientation 6), with a camera make."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "ParleyCam"  # Make
    return image("JPEG", (40, 20), exif=exif.tobytes())


PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
TEXT = "Order #123 arrived broken.\nPhotos to follow — thanks!\n".encode()
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"This program cannot be run in DOS mode"


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    return out.getvalue()


ALLOWED = {
    "image/png": lambda: png(),
    "image/jpeg": lambda: image("JPEG"),
    "image/gif": lambda: image("GIF"),
    "image/webp": lambda: image("WEBP"),
    "application/pdf": lambda: PDF,
    "text/plain": lambda: TEXT,
}
