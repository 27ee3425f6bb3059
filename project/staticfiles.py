"""How ``collectstatic`` writes the pages' files for production.

ServeStatic's manifest storage gives every file a content-hashed name (so
ServeStatic can let browsers cache it for a year: a change is a new name)
and writes gzip and Brotli variants next to it. The pages are ES modules
that import each other by relative path (``import { api } from "./api.js"``);
Django rewrites those imports to the hashed names only when asked, and an
import left unhashed would load the module a second time, from a name that
is cached for just a minute. So ask.
"""

from __future__ import annotations

from servestatic.storage import CompressedManifestStaticFilesStorage


class HashedModulesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
