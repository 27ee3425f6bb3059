"""The test suite's settings: the development mode of project.settings.

The product defaults to production behaviour (PARLEY_DEBUG off: a secret key
is required, cookies are secure, static files come hashed from
collectstatic). In-process tests run as `make run` does, with the apps'
static folders and plain-http cookies, and a key made for this run;
pytest-django still turns DEBUG off at run time. The production mode is what
the end-to-end tests start as real processes (tests/e2e/conftest.py),
collectstatic included.

The variables are set only while project.settings is read, so that the
processes tests start do not inherit them.
"""

from __future__ import annotations

import os
import secrets

_defaults = {"PARLEY_DEBUG": "1", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
_added = [name for name in _defaults if name not in os.environ]
os.environ.update({name: _defaults[name] for name in _added})
try:
    from project.settings import *  # noqa: F403
finally:
    for _name in _added:
        del os.environ[_name]

# In-process tests leave the tables' statistics to the tests that are about
# them (tests/integration/test_statistics.py turns the analyser on): an
# analysis on its own thread while an unrelated test runs, or as the test
# database is dropped, is noise. The processes the end-to-end tests start
# analyse as production does.
PARLEY_DB_ANALYZE_ROWS = 0
