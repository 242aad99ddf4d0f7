"""The documentation site (docs/, built by mkdocs into KOE_DOCS_DIR), served at /docs/ so
the dashboard's Help link works wherever Koe runs, offline included.

``./scripts/run`` and the image build the site; where it was not built, /docs/ says how.
"""

from __future__ import annotations

from django.conf import settings
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotFound,
)
from django.views.static import serve

NOT_BUILT = (
    "<!doctype html><title>Koe documentation</title>"
    "<h1>The documentation site is not built here</h1>"
    "<p>Build it with <code>.venv/bin/mkdocs build</code> in Koe's folder (or read the "
    "Markdown pages under <code>docs/</code> in the repository).</p>"
)


def docs_page(request: HttpRequest, path: str) -> HttpResponse | FileResponse:
    """A file of the built site; a folder's index.html for a folder (mkdocs' page URLs)."""
    root = settings.KOE_DOCS_DIR
    if not (root / "index.html").is_file():
        return HttpResponseNotFound(NOT_BUILT)
    if path == "" or path.endswith("/"):
        path += "index.html"
    try:
        # serve() refuses paths that leave the root (safe_join) and answers 404 for them.
        return serve(request, path, document_root=str(root))
    except Http404:
        return HttpResponseNotFound(
            "<!doctype html><title>Not found</title><h1>No such page in the documentation</h1>"
            '<p><a href="/docs/">The documentation\'s home</a></p>'
        )
