"""A burst of large images decodes under a memory bound (a real server, peak memory from /proc).

The probe: a 154 KB PNG of 6300 x 6300 RGBA raised the web process by
about 460 MB per upload; 12 at once peaked at 4.7 GB. Now such a PNG is
refused (``image_too_large``: images decoded whole are capped at 16
megapixels), and a burst of six PNGs just under that cap (4000 x 4000
RGBA, 64 MB each when decoded) is decoded two at a time
(``PARLEY_IMAGE_DECODE_SLOTS``), each with one full-size copy: the
process's peak resident memory (``VmHWM`` in /proc/<pid>/status, reset
before the burst) grows by about four decodes' worth (two at a time, two
copies each), where six decodes at once took three copies each.

And the memory goes back: before glibc's mmap threshold was fixed
(attachments/images.py), each request thread kept the blocks of the last
image it decoded, so the process stayed about two decodes above where it
started, and the peak grew with the number of threads that had decoded
(251 to 371 MiB over six runs of this test).
"""

from __future__ import annotations

import io
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e

BURST = 6
SIDE = 4000
DECODED_MIB = SIDE * SIDE * 4 // (1024 * 1024)  # 61 MiB as RGBA


@pytest.fixture
def image_stack(tmp_path: Path) -> Iterator[Stack]:
    stack, drop = start_stack(tmp_path, extra_env={"PARLEY_IMAGE_DECODE_SLOTS": "2"})
    try:
        yield stack
    finally:
        stop_stack(stack)
        drop()


def png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (200, 30, 30, 128)).save(out, "PNG")
    return out.getvalue()


def upload(stack: Stack, token: str, data: bytes, name: str = "big.png") -> tuple[int, Any]:
    boundary = secrets.token_hex(12)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{stack.url}/api/v1/attachments", data=body, method="POST")
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def reset_peak(pid: int) -> int:
    """Reset the process's VmHWM to its VmRSS (clear_refs 5), if allowed; the baseline to measure from."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # not allowed: VmHWM then also holds earlier peaks, which only makes the bound harder to meet
    return status_kib(pid, "VmRSS")


def test_a_burst_of_large_images_peaks_under_the_decode_bound_and_the_probe_png_is_refused(image_stack: Stack):
    stack = image_stack
    pid = stack.named["serve-0"].pid
    token = stack.register_customer()["token"]

    status, body = upload(stack, token, png(6300))  # the probe's image: 40 megapixels, 154 KB
    assert (status, body["error"]["code"]) == (400, "image_too_large")

    data = png(SIDE)
    assert upload(stack, token, data)[0] == 201  # warm: the code paths and Pillow loaded once
    baseline = reset_peak(pid)
    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(lambda _: upload(stack, token, data), range(BURST)))
    assert [status for status, _ in answers] == [201] * BURST
    peak_mib = (status_kib(pid, "VmHWM") - baseline) // 1024
    print(f"{BURST} uploads of {SIDE}x{SIDE} RGBA ({len(data) // 1024} KiB each, {DECODED_MIB} MiB decoded): "
          f"peak +{peak_mib} MiB over {baseline // 1024} MiB; after: {status_kib(pid, 'VmRSS') // 1024} MiB")
    # Two decodes at a time, each about twice the decoded size at its peak: four, with room for the rest.
    assert peak_mib < 5 * DECODED_MIB, peak_mib
    # Once the burst is over, its pixels have left the process: not even half a decode is kept.
    kept_mib = (status_kib(pid, "VmRSS") - baseline) // 1024
    assert kept_mib < DECODED_MIB // 2, kept_mib
