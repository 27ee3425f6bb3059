"""The shipped systemd units let Parley write every path it writes, and nothing else.

``ProtectSystem=strict`` mounts the whole system read-only for the service
but ``ReadWritePaths=``, the private ``/tmp`` (``PrivateTmp=yes``) and the API
file systems; ``ProtectHome=yes`` hides ``/home`` and ``/root``. The paths
Parley writes come from its settings as ``docs/deploy/parley.env`` configures
them (the settings are loaded in a child process with that environment).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
UNITS = ["parley-web@.service", "parley-workers.service"]

WRITTEN_PATHS = """
import json, tempfile
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
paths = {"attachments (PARLEY_MEDIA_ROOT)": str(settings.PARLEY_MEDIA_ROOT),
         "spooled uploads (FILE_UPLOAD_TEMP_DIR)": settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()}
if db["ENGINE"].endswith("sqlite3"):
    paths["the SQLite database"] = str(db["NAME"])
print(json.dumps(paths))
"""


def unit(name: str) -> dict[str, list[str]]:
    """The unit's [Service] options, each with every value it is given."""
    options: dict[str, list[str]] = {}
    section = None
    for line in (DEPLOY / name).read_text().splitlines():
        if re.fullmatch(r"\[\w+\]", line.strip()):
            section = line.strip()
        elif section == "[Service]" and "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            options.setdefault(key.strip(), []).append(value.strip())
    return options


def env_file() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "parley.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value.replace("CHANGE_ME", "x" * 50)
    return values


@pytest.fixture(scope="module")
def written() -> dict[str, str]:
    env = {**env_file(), "PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "project.settings"}
    done = subprocess.run([sys.executable, "-c", WRITTEN_PATHS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def writable(options: dict[str, list[str]], path: str) -> bool:
    p = PurePosixPath(path)
    allowed = [PurePosixPath(v.lstrip("-+")) for value in options.get("ReadWritePaths", []) for v in value.split()]
    if options.get("PrivateTmp") == ["yes"]:
        allowed += [PurePosixPath("/tmp"), PurePosixPath("/var/tmp")]
    return any(p == a or a in p.parents for a in allowed)


def test_the_environment_file_keeps_what_parley_writes_out_of_the_checkout(written):
    checkout = PurePosixPath(unit(UNITS[0])["WorkingDirectory"][0])
    for what, path in written.items():
        assert PurePosixPath(path).is_absolute(), what
        assert checkout not in PurePosixPath(path).parents, f"{what} at {path}: inside the read-only checkout"


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_may_write_every_path_parley_writes(name, written):
    options = unit(name)
    assert options["ProtectSystem"] == ["strict"]  # the rest stays read-only
    for what, path in written.items():
        assert writable(options, path), f"{name}: {what} at {path} is read-only under ProtectSystem=strict"


@pytest.mark.parametrize("name", UNITS)
def test_each_writable_path_is_created_by_the_deploy_guide_for_the_service_user(name):
    guide = (ROOT / "docs" / "deploy.md").read_text()
    user = unit(name)["User"][0]
    for value in unit(name).get("ReadWritePaths", []):
        for path in value.split():
            assert re.search(rf"install -d( -m \d+)? -o {user} -g {user} {re.escape(path.lstrip('-+'))}\n", guide), path


def test_a_unit_without_the_media_folder_would_be_refused():
    options = unit(UNITS[0])
    without = {k: v for k, v in options.items() if k != "ReadWritePaths"}
    assert not writable(without, env_file()["PARLEY_MEDIA_ROOT"] + "/a/b.png")
    assert writable(options, env_file()["PARLEY_MEDIA_ROOT"] + "/a/b.png")


def test_the_metrics_folder_of_docs_metrics_is_shared_and_writable_under_the_units():
    """PROMETHEUS_MULTIPROC_DIR as docs/metrics.md sets it up: one folder every process
    of the host shares (not the unit's private /tmp), writable once its drop-in is added."""
    guide = (ROOT / "docs" / "metrics.md").read_text()
    folder = re.search(r"^echo 'PROMETHEUS_MULTIPROC_DIR=(\S+)'", guide, re.M)[1]  # type: ignore[index]
    drop_in = re.search(r"printf '\[Service\]\\nReadWritePaths=(\S+)\\n'", guide)[1]  # type: ignore[index]
    assert drop_in == folder
    assert not any(PurePosixPath(folder).is_relative_to(t) for t in ("/tmp", "/var/tmp")), "private to each unit"
    assert re.search(rf"install -d( -m \d+)? -o parley -g parley {re.escape(folder)}\n", guide)
    for name in UNITS:
        options = unit(name)
        assert not writable(options, folder + "/counter_1.db")  # the shipped unit alone refuses it
        options["ReadWritePaths"] = options.get("ReadWritePaths", []) + [drop_in]
        assert writable(options, folder + "/counter_1.db")
        assert writable(options, env_file()["PARLEY_MEDIA_ROOT"] + "/a.png")  # the drop-in adds, keeps media
