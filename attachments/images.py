"""Images: checked by decoding them, and thumbnailed. Pillow, no Django.

Decoding is where image files attack: a small file can declare billions of
pixels (a decompression bomb). Pillow refuses to open an image above
``Image.MAX_IMAGE_PIXELS`` twice over and warns above it; both are refused
here, with the limit set explicitly rather than inherited.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from attachments.errors import AttachmentTypeNotAllowed, ImageTooLarge

#: The largest image decoded (about 40 megapixels: a large phone photo is 12 to 50).
MAX_PIXELS = 40_000_000
#: A thumbnail fits in this box.
THUMBNAIL_BOX = (320, 320)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                is_jpeg = image.format == "JPEG"
                if is_jpeg:
                    image.draft("RGB", THUMBNAIL_BOX)  # decode at a reduced scale: faster, less memory
                turned = ImageOps.exif_transpose(image)
                turned.thumbnail(THUMBNAIL_BOX)
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
