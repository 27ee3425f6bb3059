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
"""

from __future__ import annotations

import io
import os
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
#: The EXIF tag that says how to turn the image to show it.
ORIENTATION = 0x0112


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
