"""Images: checked by decoding them, and thumbnailed. Pillow, no Django.

Decoding is where image files attack: a small file can declare billions of
pixels (a decompression bomb). Pillow refuses to open an image above
``Image.MAX_IMAGE_PIXELS`` twice over and warns above it; both are refused
here, with the limit set explicitly rather than inherited.

Memory: a file of 150 KB can still be a 40-megapixel RGBA image, 160 MB
once decoded, and the thumbnail used to take three copies of it (decoded,
turned, resized: 460 MB each, 4.7 GB for twelve at once). So:

* a JPEG is decoded at a reduced scale (``draft``), so its cap stays
  ``MAX_PIXELS`` (a phone photo is 12 to 50 megapixels);
* every other format is decoded whole, and is capped lower
  (``MAX_FULL_DECODE_PIXELS``, 16 megapixels: 64 MB as RGBA; shrinking an
  RGBA image takes a second, premultiplied copy, so 128 MB at the peak);
* the image is shrunk in place first and turned (EXIF orientation) after,
  so the full-size pixels exist once;
* at most ``DECODE_SLOTS`` decodes run at once in a process
  (``PARLEY_IMAGE_DECODE_SLOTS``, default 2); the others wait their turn.

So a burst of large images costs at most DECODE_SLOTS × twice the largest
decoded size (about 260 MB with the defaults), whatever the burst's size.

That bound also needs the memory of a finished decode to go back to the
operating system. Pillow keeps pixels in blocks of 16 MB from ``malloc``;
glibc maps such a block on its own, but after the first one is freed it
raises its threshold (the "dynamic mmap threshold") and serves the next
ones from the arena of the thread asking, where a freed block stays
resident for that thread. Each request thread then kept one image's worth:
six uploads on six threads peaked at six decodes' worth although only two
ran at once. ``_map_large_blocks_alone`` fixes the threshold at 1 MB on
glibc, so every block is mapped alone and unmapped when freed.
"""

from __future__ import annotations

import ctypes
import io
import os
import platform
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from attachments.errors import AttachmentTypeNotAllowed, ImageTooLarge

#: The largest image decoded (about 40 megapixels: a large phone photo is 12 to 50).
MAX_PIXELS = 40_000_000
#: The largest image of a format decoded whole (everything but JPEG): 64 MB as RGBA
#: (4000 x 4000; a 5K screenshot is 14.7 megapixels).
MAX_FULL_DECODE_PIXELS = 16_000_000
#: Image decodes that may run at once in one process.
DECODE_SLOTS = max(1, int(os.environ.get("PARLEY_IMAGE_DECODE_SLOTS", "2")))
_slots = threading.BoundedSemaphore(DECODE_SLOTS)
#: A thumbnail fits in this box.
THUMBNAIL_BOX = (320, 320)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
#: glibc's ``mallopt`` parameter for the size from which an allocation is mapped alone.
M_MMAP_THRESHOLD = -3
#: Allocations of this size and more are mapped alone (and so returned to the system when freed).
MMAP_THRESHOLD_BYTES = 1024 * 1024
#: The EXIF tag that says how to turn the image to show it.
ORIENTATION = 0x0112


def _map_large_blocks_alone() -> bool:
    """Fix glibc's mmap threshold, so a freed image block leaves the process at once (see above).

    Setting the threshold also turns off its dynamic raising; allocations
    under 1 MB are served from the arenas as before. Other C libraries
    (musl, macOS) do not raise their threshold like this and are left as
    they are. True if the threshold was set.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


_map_large_blocks_alone()


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str


def thumbnail(data: bytes) -> Thumbnail:
    """A small copy of the image, turned as its EXIF orientation says, with no metadata.

    JPEG stays JPEG; the others become PNG (transparency kept; an animated
    GIF or WebP gives its first frame). The copy is encoded afresh from
    pixels, so none of the original's EXIF (camera, GPS position), ICC or
    text chunks carry over.
    """
    with _slots, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                is_jpeg = image.format == "JPEG"
                if is_jpeg:
                    image.draft("RGB", THUMBNAIL_BOX)  # decode at a reduced scale: faster, less memory
                elif image.width * image.height > MAX_FULL_DECODE_PIXELS:
                    raise ImageTooLarge(f"a {image.format} image may have at most {MAX_FULL_DECODE_PIXELS} "
                                        f"pixels (JPEG photos up to {MAX_PIXELS})")
                orientation = image.getexif().get(ORIENTATION)
                # Shrink in place first (the only full-size copy), then turn the small one:
                # the box is square, so the turned thumbnail fits it too.
                image.thumbnail(THUMBNAIL_BOX)
                if orientation:
                    small = image.copy()
                    small.getexif()[ORIENTATION] = orientation
                    small.info.pop("exif", None)
                    turned = ImageOps.exif_transpose(small)
                else:
                    turned = image
                if is_jpeg:
                    target, fmt, options = turned.convert("RGB"), "JPEG", {"quality": 85}
                else:
                    mode = "RGBA" if turned.mode in ("RGBA", "LA", "P", "PA") else "RGB"
                    target, fmt, options = turned.convert(mode), "PNG", {"optimize": True}
                clean = Image.new(target.mode, target.size)
                clean.paste(target)
                out = io.BytesIO()
                clean.save(out, fmt, **options)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageTooLarge(f"the image has more than {MAX_PIXELS} pixels") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            # The signature said image, the decoder disagrees: not an image we show.
            raise AttachmentTypeNotAllowed("the file is not a readable image") from None
    return Thumbnail(out.getvalue(), "image/jpeg" if fmt == "JPEG" else "image/png")
