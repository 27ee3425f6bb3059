"""Attachment endpoints: upload (multipart), and the downloads a message's attachment links to.

Everything about the files (type sniffing, thumbnails, storage, who may see
what) is the attachments context's (attachments.services); this module
speaks HTTP: the multipart request, and response headers that make user
bytes harmless when served from Parley's own origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.http import FileResponse, HttpRequest, JsonResponse

from accounts.errors import RateLimited
from accounts.principals import Principal
from accounts.sendbudget import charge_upload
from api.customers import has_integration_key
from api.errors import ApiError
from api.http import api, authenticate, doc
from api.schemas import UUID
from attachments.errors import AttachmentTooLarge, AttachmentTypeNotAllowed, ImageTooLarge, MissingFile
from attachments.services import attachment_for, attachment_upload, name_for_type, open_file, thumbnail_type
from attachments.sniff import ALLOWED_TYPES, IMAGE_TYPES, TEXT
from eventstore.keys import SubjectErased
from kernel import ids
from kernel.errors import DomainError

#: Headers of every download. ``nosniff``: the browser takes the type we
#: sniffed, never its own guess. The CSP sandbox: should a file ever be
#: rendered as a document, it runs nothing, loads nothing and has no origin
#: (no cookies, no same-origin requests). CORP: other sites cannot embed it.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    # The URL is stable and the bytes never change, but who may fetch them can.
    "Cache-Control": "private, max-age=3600",
    "Vary": "Cookie, Authorization",
}

DOWNLOAD_ERRORS = [(404, "not_found")]
DOWNLOAD_SECURITY = ["customerToken", "customerCookie", "agentToken", "agentSession", "integrationKey"]


@api(["POST"], "any")
@doc("POST", "Upload a file to send with a message", operation_id="uploadAttachment", body="AttachmentUpload", body_media="multipart/form-data",
     responses={201: "UploadedAttachment"},
     errors=[SubjectErased, MissingFile, AttachmentTypeNotAllowed, AttachmentTooLarge, ImageTooLarge, RateLimited, (413, "body_too_large"),
             (400, "malformed_multipart"),
             (415, "unsupported_media_type")],
     description="Multipart form data with the file in the field `file`. The type is read from the bytes: PNG, "
     "JPEG, GIF and WebP images, PDF and plain UTF-8 text are accepted, anything else is 415 "
     "`attachment_type_not_allowed`; a file over `PARLEY_MAX_ATTACHMENT_BYTES` (default 10 MiB) is 413 "
     "`attachment_too_large`. Each customer may upload `PARLEY_CUSTOMER_UPLOADS_PER_MINUTE` (20) files a minute, "
     "each agent `PARLEY_AGENT_UPLOADS_PER_MINUTE` (60); past it 429 `rate_limited` with `Retry-After`. Send it with a message (`attachments` of a send) within 24 hours, or it is deleted.")
def attachments(request: HttpRequest, principal: Principal) -> JsonResponse:
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data in the field 'file'")
    charge_upload(principal.kind, principal.id)  # before the body is parsed and stored
    upload = request.FILES.get("file")
    if upload is None:
        raise MissingFile("the multipart field 'file' is missing")
    row = attachment_upload(uploader_kind=principal.kind, uploader_id=principal.id, file=upload,
                            name=upload.name or "", size=upload.size or 0)
    return JsonResponse({"attachment_id": str(row.id), "name": row.name, "content_type": row.content_type,
                         "size": row.size}, status=201)


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and the exact name as ``filename*`` (RFC 5987)."""
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\;%' else "_" for ch in name) or "attachment"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _viewer(request: HttpRequest) -> tuple[str, str] | None:
    """The caller's kind and id, or None: a missing, invalid or expired credential is simply nobody.
    The integration key is the host application, which downloads the links of an export it asked for."""
    if has_integration_key(request):
        return "integration", ""
    try:
        principal = authenticate(request)
    except DomainError:
        return None
    return (principal.kind, principal.id) if principal else None


def _download(request: HttpRequest, attachment_id: str, *, thumbnail: bool) -> FileResponse:
    viewer = _viewer(request)
    parsed = ids.parse_uuid(attachment_id)
    row = attachment_for(parsed, viewer_kind=viewer[0], viewer_id=viewer[1]) if viewer and parsed else None
    if row is None or (thumbnail and not row.thumbnail):
        # One answer for "no such file" and "not yours": the id tells nothing to whoever may not see it.
        raise ApiError(404, "not_found", f"no attachment {attachment_id}")
    content_type = thumbnail_type(row) if thumbnail else row.content_type
    response = FileResponse(open_file(row, thumbnail=thumbnail),
                            content_type="text/plain; charset=utf-8" if content_type == TEXT else content_type)
    # Images are shown (only with their sniffed image type); everything else is saved, never rendered.
    response["Content-Disposition"] = content_disposition(
        "inline" if content_type in IMAGE_TYPES else "attachment", name_for_type(row.name, content_type))
    for header, value in DOWNLOAD_HEADERS.items():
        response[header] = value
    return response


def _download_doc(media: list[str], description: str) -> dict[str, Any]:
    return {
        "path": {"attachment_id": {"schema": UUID}}, "responses": {200: None}, "media": {200: media},
        "errors": DOWNLOAD_ERRORS, "security": DOWNLOAD_SECURITY, "description": description,
    }


@api(["GET"], None)  # authenticated here: a caller who may not see the file gets 404, never 401 or 403
@doc("GET", "Download an attachment", operation_id="downloadAttachment", **_download_doc(
    sorted(ALLOWED_TYPES),
    "The conversation's customer, the agents, and the host application with the integration key (the links of "
    "an export) only; anyone else, signed in or not, gets 404 (an unsent upload: its uploader only). Images are "
    "served inline with their sniffed type, everything else as `Content-Disposition: attachment` (plain text "
    "as `text/plain; charset=utf-8`), always with `X-Content-Type-Options: nosniff` and a sandboxing "
    "`Content-Security-Policy`. This is the `url` of a message's attachment."))
def attachment_content(request: HttpRequest, attachment_id: str) -> FileResponse:
    return _download(request, attachment_id, thumbnail=False)


@api(["GET"], None)
@doc("GET", "Download an image attachment's thumbnail", operation_id="downloadAttachmentThumbnail", **_download_doc(
    ["image/jpeg", "image/png"],
    "At most 320×320 pixels, turned upright, without metadata (JPEG for JPEG images, PNG for the others); "
    "the `thumbnail_url` of a message's image attachment. Authorised like the attachment itself."))
def attachment_thumbnail(request: HttpRequest, attachment_id: str) -> FileResponse:
    return _download(request, attachment_id, thumbnail=True)


