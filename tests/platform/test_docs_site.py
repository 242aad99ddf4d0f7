"""The documentation site: built from docs/ by mkdocs, served at /docs/, linked as Help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tenancy.roles import Role
from tests.conftest import TenantWorld

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MKDOCS.exists():
        pytest.skip("mkdocs is not installed (the dev or docs extra installs it)")
    folder = tmp_path_factory.mktemp("site")
    subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(folder)],
        capture_output=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    return folder


@pytest.fixture
def docs(settings: Any, site: Path) -> Path:
    settings.KOE_DOCS_DIR = site
    return site


def text_of(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def test_the_pages_and_their_assets_are_served(docs: Path, client: Client) -> None:
    home = client.get("/docs/")
    assert home.status_code == 200
    assert "Koe" in text_of(home)
    page = client.get("/docs/integrate/realtime/")
    assert page.status_code == 200
    assert "Talking to an agent" in text_of(page)
    assert client.get("/docs/operate/configuration/").status_code == 200
    stylesheet = next((docs / "assets" / "stylesheets").glob("main.*.min.css"))
    asset = client.get(f"/docs/assets/stylesheets/{stylesheet.name}")
    assert asset.status_code == 200


@pytest.mark.parametrize(
    "path", ["/docs/no-such-page/", "/docs/../koe/settings.py", "/docs/%2e%2e/README.md"]
)
def test_what_is_not_a_page_of_the_site_is_not_found(docs: Path, client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404)  # 400: a path that leaves the site's folder
    assert b"SECRET_KEY" not in response.content


def test_an_unbuilt_site_says_how_to_build_it(
    settings: Any, tmp_path: Path, client: Client
) -> None:
    settings.KOE_DOCS_DIR = tmp_path / "missing"
    response = client.get("/docs/")
    assert response.status_code == 404
    assert "mkdocs build" in response.content.decode()


@pytest.mark.django_db
def test_the_dashboard_links_its_help_to_the_site(tenant_a: TenantWorld) -> None:
    page = tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:agent_list"))
    assert 'href="/docs/"' in page.content.decode()


def test_the_site_builds_from_a_copy_of_the_docs_without_the_checkout(tmp_path: Path) -> None:
    # mkdocs.yml names every page: a page left out of the nav, or a nav entry without its
    # page, fails the strict build.
    if not MKDOCS.exists():
        pytest.skip("mkdocs is not installed (the dev or docs extra installs it)")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "orphan.md").write_text("# Not in the nav\n")
    built = subprocess.run(
        # Not --quiet: it hides the warnings that --strict counts.
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert built.returncode != 0
    assert "orphan.md" in built.stderr
