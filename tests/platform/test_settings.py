"""Settings come from the environment; production mode refuses development secrets."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "ALLOWED_HOSTS", "KOE_ENV", "DEBUG"}
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="koe.settings")
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        "KOE_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "koe.example.com",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value}


def test_production_refuses_to_start_without_secrets() -> None:
    result = _django("pass", **_production_env(SECRET_KEY="", FIELD_ENCRYPTION_KEYS=""))
    assert result.returncode != 0
    assert "refuses to start without SECRET_KEY, FIELD_ENCRYPTION_KEYS" in result.stderr


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("not-a-fernet-key", "FIELD_ENCRYPTION_KEYS: key 1 is not a Fernet key (of 1,"),
        # url-safe base64, but of 16 bytes (an AES-128 key), not Fernet's 32.
        (
            "{good},MDEyMzQ1Njc4OWFiY2RlZg==",
            "FIELD_ENCRYPTION_KEYS: key 2 is not a Fernet key (of 2,",
        ),
        ("{good},c2hvcnQ=,{good},my-old-password", "keys 2, 4 are not Fernet keys (of 4,"),
    ],
)
def test_production_refuses_a_malformed_encryption_key_naming_which(
    keys: str, message: str
) -> None:
    good = Fernet.generate_key().decode()
    keys = keys.format(good=good)

    result = _django("pass", **_production_env(FIELD_ENCRYPTION_KEYS=keys))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    for key in keys.split(","):
        assert key not in result.stderr


def test_development_refuses_a_malformed_encryption_key(tmp_path: Path) -> None:
    result = _django("pass", KOE_VAR_DIR=str(tmp_path), FIELD_ENCRYPTION_KEYS="hunter2")

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS: key 1 is not a Fernet key" in result.stderr
    assert "hunter2" not in result.stderr


def test_production_starts_with_a_list_of_good_keys() -> None:
    keys = ",".join(Fernet.generate_key().decode() for _ in range(3))
    result = _django(
        "from foundation.encryption import decrypt, encrypt; print(decrypt(encrypt('ok')))",
        **_production_env(FIELD_ENCRYPTION_KEYS=keys),
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"]


def test_production_refuses_a_weak_secret_key() -> None:
    result = _django("pass", **_production_env(SECRET_KEY="django-insecure-short"))
    assert result.returncode != 0
    assert "SECRET_KEY must be a random value" in result.stderr


def test_production_needs_allowed_hosts() -> None:
    result = _django("pass", **_production_env(ALLOWED_HOSTS=""))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_check_deploy_is_clean_in_production_mode() -> None:
    result = _django(
        "from django.core.management import call_command;"
        "call_command('check', deploy=True, fail_level='WARNING')",
        **_production_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_settings_are_secure() -> None:
    result = _django(
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.ALLOWED_HOSTS)",
        **_production_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True", "['koe.example.com']"]


def test_bad_boolean_is_a_clear_error() -> None:
    result = _django("pass", KOE_PUBLIC_SIGNUP="maybe")
    assert result.returncode != 0
    assert "KOE_PUBLIC_SIGNUP must be a boolean" in result.stderr


def test_embedded_default_without_services(tmp_path: Path) -> None:
    result = _django(
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'],"
        " s.CELERY_TASK_ALWAYS_EAGER)",
        KOE_VAR_DIR=str(tmp_path),
        DATABASE_URL="",
        REDIS_URL="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "True",
    ]


def test_services_from_urls() -> None:
    result = _django(
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'],"
        " s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)",
        DATABASE_URL="postgres://koe:pw@db.internal:5432/koe",
        REDIS_URL="redis://cache.internal:6379/2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "koe",
        "foundation.channel_layer.RedisChannelLayer",  # channels_redis, its receive wait a setting
        "redis://cache.internal:6379/2",
        "False",
    ]


def test_static_files_collect_in_production_mode(tmp_path: Path) -> None:
    # The Docker image runs this at build time; the manifest storage fails on any
    # reference (CSS url(), source map) to a file that is not there.
    result = _django(
        "from django.core.management import call_command;"
        "call_command('collectstatic', interactive=False, verbosity=0)",
        **_production_env(STATIC_ROOT=str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "staticfiles.json").exists()
    assert list(tmp_path.glob("dashboard/koe.*.css"))
