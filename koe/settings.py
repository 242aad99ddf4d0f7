"""Django settings for Koe, read from environment variables with safe defaults.

Unset, everything falls back to the embedded default: SQLite, the in-memory channel
layer, eager Celery and development secrets generated into an ignored local file.
``KOE_ENV=production`` turns that fallback off and refuses to start without real secrets.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from foundation.checks import check_fernet_keys
from foundation.env import (
    development_secrets,
    env_bool,
    env_float,
    env_ice_servers,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parents[1]
VAR_DIR = Path(env_str("KOE_VAR_DIR") or BASE_DIR / "var")
# The documentation site, built by mkdocs (mkdocs.yml: site_dir), served at /docs/.
KOE_DOCS_DIR = Path(env_str("KOE_DOCS_DIR") or BASE_DIR / "var" / "site")

KOE_ENV = env_str("KOE_ENV", "development")
if KOE_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"KOE_ENV must be 'development' or 'production', got {KOE_ENV!r}")
IS_PRODUCTION = KOE_ENV == "production"

# --- secrets ---------------------------------------------------------------------------
if IS_PRODUCTION:
    _missing = [name for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS") if not env_str(name)]
    if _missing:
        raise ImproperlyConfigured(
            "Production mode (KOE_ENV=production) refuses to start without "
            + ", ".join(_missing)
            + ". See the configuration table in docs/operate/configuration.md."
        )
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("SECRET_KEY must be a random value of at least 50 characters.")
    FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _dev = development_secrets(BASE_DIR / ".koe-dev-secrets.json")
    SECRET_KEY = env_str("SECRET_KEY") or _dev["SECRET_KEY"]
    FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or [_dev["FIELD_ENCRYPTION_KEYS"]]
# Every key, now: a bad one would otherwise pass start-up and fail the first encryption.
check_fernet_keys(FIELD_ENCRYPTION_KEYS)

DEBUG = env_bool("DEBUG", default=not IS_PRODUCTION)
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Production mode needs ALLOWED_HOSTS (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- applications ------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "ninja",
    "foundation",
    "tenancy",
    "calls",
    "billing",
    "events",
    "retention",
    "audit",
    "tools",
    "agents",
    "agents.telephony",
    "dashboard",
]

MIDDLEWARE = [
    # /healthz and /readyz, for load balancers and kubelets: before anything reads Host.
    "foundation.probes.probe_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A session that owes a two-factor code sees only the page that asks for it.
    "dashboard.middleware.TwoFactorMiddleware",
    # Last, as django-axes asks: turns a locked-out log-in into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "koe.urls"
# Under /v1/ a refused CSRF check answers an OpenAI-style JSON error, never a page.
CSRF_FAILURE_VIEW = "foundation.api.csrf_failure"
ASGI_APPLICATION = "koe.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenancy.context_processors.current_tenant",
            ],
        },
    },
]

# --- data --------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    # Connections are opened per piece of work (Channels and Django close them after
    # each), except on the call set-up threads, which keep theirs (foundation.call_threads)
    # and check it before each use, as this asks.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "koe.sqlite3")}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time: a transaction takes the write lock when it begins, so two that
    # read then write (get_or_create) cannot deadlock on upgrading; others wait their turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Threads for calls' database work (setting them up, their transcript and usage writes,
# their ends), each keeping its connection, apart from Channels' one database thread, so
# that a burst of callers is not served one by one behind every live call's writes, nor
# each piece of work opens a connection. SQLite takes one writer at a time, and a second
# thread would only wait on its lock: 0 there, which keeps the work on Channels' thread.
_ON_POSTGRESQL = "postgresql" in DATABASES["default"]["ENGINE"]
KOE_CALL_DB_THREADS = env_int("KOE_CALL_DB_THREADS", 4) if _ON_POSTGRESQL else 0

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_RECEIVE_TIMEOUT = 5.0  # channels_redis's wait in each blocking receive
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "foundation.channel_layer.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times socket reads out after 5 s, exactly channels_redis's
                # blocking-receive wait: a quiet consumer would die of "Timeout reading".
                # The socket's timeout is kept well over the receive's.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 6 * CHANNEL_RECEIVE_TIMEOUT,
                        "socket_keepalive": True,
                    }
                ],
                "receive_timeout": CHANNEL_RECEIVE_TIMEOUT,
                "prefix": env_str("KOE_CHANNEL_PREFIX", "koe"),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("KOE_CACHE_PREFIX", "koe"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery (see koe/celery.py); eager on the embedded default ------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
# Without a beat process (the embedded default), the server runs beat's schedule itself.
KOE_EMBEDDED_BEAT = env_bool("KOE_EMBEDDED_BEAT", default=CELERY_TASK_ALWAYS_EAGER)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = "UTC"

# --- auth ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"
# django-axes checks every log-in first; the model backend then checks the password.
AUTHENTICATION_BACKENDS = [
    "tenancy.logins.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Log-in lockout (django-axes): KOE_LOGIN_FAILURE_LIMIT failed log-ins for one account, or
# from one client address (see KOE_TRUSTED_PROXIES), lock that account or address out until
# KOE_LOGIN_LOCKOUT_MINUTES have passed since its last failure. Tries while locked out are
# refused without counting, so they do not extend the lockout.
AXES_FAILURE_LIMIT = env_int("KOE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("KOE_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "foundation.http.client_ip"
AXES_LOCKOUT_CALLABLE = "dashboard.views.accounts.locked_out"
# Only failures are kept (they expire with the cool-off), not a row for every log-in.
AXES_DISABLE_ACCESS_LOG = True
# Password-reset links work once (a new password voids them) and for this long.
PASSWORD_RESET_TIMEOUT = env_int("KOE_PASSWORD_RESET_MINUTES", 60) * 60
# Two-factor log-in (django-otp): the name authenticator apps show next to the account.
OTP_TOTP_ISSUER = "Koe"

KOE_PUBLIC_SIGNUP = env_bool("KOE_PUBLIC_SIGNUP", default=True)
KOE_INVITATION_DAYS = env_int("KOE_INVITATION_DAYS", 7)
KOE_SITE_URL = env_str("KOE_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# /demo/: a small business's page hosting the widget for the seed_demo agent (404 when off).
KOE_DEMO_PAGE = env_bool("KOE_DEMO_PAGE", default=not IS_PRODUCTION)

# --- e-mail ----------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Koe <koe@localhost>")

# --- providers ---------------------------------------------------------------------------
# The operator's default OpenAI key, used by agents whose tenant has stored none.
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
KOE_OPENAI_REALTIME_URL = env_str("KOE_OPENAI_REALTIME_URL", "wss://api.openai.com/v1")
KOE_TRANSCRIPTION_MODEL = env_str("KOE_TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe")
# Carriers' REST APIs (outbound calls, transfers, hang-ups); settings so tests use fakes.
KOE_TWILIO_API_URL = env_str("KOE_TWILIO_API_URL", "https://api.twilio.com").rstrip("/")
KOE_TELNYX_API_URL = env_str("KOE_TELNYX_API_URL", "https://api.telnyx.com/v2").rstrip("/")
KOE_CARRIER_TIMEOUT_SECONDS = env_float("KOE_CARRIER_TIMEOUT_SECONDS", 10.0)

# The built-in offline provider ("local"): speech in and out inside this process.
# CPU work (VAD, speech-to-text, text-to-speech) runs in one bounded pool per process.
KOE_LOCAL_WORKERS = env_int("KOE_LOCAL_WORKERS", os.cpu_count() or 2)
# "piper" (the bundled neural voice), "espeak" (espeak-ng, light) or "auto" (piper,
# else espeak-ng when piper's voice is not installed).
KOE_LOCAL_TTS = env_str("KOE_LOCAL_TTS", "auto")
# The "llm" response engine: any OpenAI-compatible chat-completions server the operator
# runs (Ollama, llama.cpp server, vLLM), e.g. http://127.0.0.1:11434/v1 for Ollama.
KOE_LOCAL_LLM_BASE_URL = env_str("KOE_LOCAL_LLM_BASE_URL").rstrip("/")
KOE_LOCAL_LLM_MODEL = env_str("KOE_LOCAL_LLM_MODEL", "llama3.2")
KOE_LOCAL_LLM_API_KEY = env_str("KOE_LOCAL_LLM_API_KEY")
KOE_LOCAL_LLM_TIMEOUT_SECONDS = env_int("KOE_LOCAL_LLM_TIMEOUT_SECONDS", 30)

# --- realtime broker ---------------------------------------------------------------------
KOE_REALTIME_MAX_FRAME_BYTES = env_int("KOE_REALTIME_MAX_FRAME_BYTES", 256 * 1024)
KOE_SESSION_TOKEN_TTL_SECONDS = env_int("KOE_SESSION_TOKEN_TTL_SECONDS", 60)
KOE_WIDGET_TOKENS_PER_MINUTE = env_int("KOE_WIDGET_TOKENS_PER_MINUTE", 20)
# Proxies in front of Koe that append the client's address to X-Forwarded-For.
KOE_TRUSTED_PROXIES = env_int("KOE_TRUSTED_PROXIES", 0)
# Outbound requests to tenants' servers (tool webhooks, MCP servers, event webhooks) never
# reach private, loopback, link-local or otherwise non-public addresses, except hosts or
# networks listed here (e.g. "127.0.0.1,10.0.0.0/8,tools.internal" for on-premise tools).
KOE_OUTBOUND_ALLOWLIST = env_list("KOE_OUTBOUND_ALLOWLIST")
# The most of a tool's response that is read; a bigger one is an error the model hears.
KOE_TOOL_MAX_RESPONSE_BYTES = env_int("KOE_TOOL_MAX_RESPONSE_BYTES", 64 * 1024)
# How long the tool list of an MCP server is reused before it is asked again.
KOE_MCP_TOOLS_CACHE_SECONDS = env_int("KOE_MCP_TOOLS_CACHE_SECONDS", 300)
# Calls marked active for longer than their limit plus this grace are not counted
# against the concurrency cap (their process died without ending them).
KOE_STALE_CALL_GRACE_SECONDS = env_int("KOE_STALE_CALL_GRACE_SECONDS", 120)
# Budgets: how long a tenant's month-to-date spending is cached for the call path, and how
# often a live call checks it against a hard budget's overrun.
KOE_BUDGET_CACHE_SECONDS = env_int("KOE_BUDGET_CACHE_SECONDS", 30)
KOE_BUDGET_CHECK_SECONDS = env_int("KOE_BUDGET_CHECK_SECONDS", 5)
# Call recordings (recording consent only): settled audio is written as a part every
# KOE_RECORDING_FLUSH_SECONDS, holding back the last KOE_RECORDING_SETTLE_MS so that a
# barge-in's truncation can still cut agent audio; play/download links live this long.
KOE_RECORDING_FLUSH_SECONDS = env_int("KOE_RECORDING_FLUSH_SECONDS", 5)
KOE_RECORDING_SETTLE_MS = env_int("KOE_RECORDING_SETTLE_MS", 2000)
KOE_RECORDING_URL_SECONDS = env_int("KOE_RECORDING_URL_SECONDS", 300)
KOE_METRICS_TOKEN = env_str("KOE_METRICS_TOKEN")
KOE_INSTANCE_NAME = env_str("KOE_INSTANCE_NAME") or f"{socket.gethostname()}:{os.getpid()}"
# Each serving process records that it is alive this often; one silent for
# KOE_INSTANCE_LOST_SECONDS is taken for dead: its calls stop counting against their
# tenant's cap and are ended as server_lost (by any other process, and by Celery beat).
# The end of a call (its last transcript items, its usage, its end) is retried this long
# while the database is away; what still cannot be written is spooled to KOE_SPOOL_DIR and
# written by the server once the database is back (also after a restart).
KOE_END_RETRY_SECONDS = env_float("KOE_END_RETRY_SECONDS", 30.0)
KOE_SPOOL_DIR = Path(env_str("KOE_SPOOL_DIR") or VAR_DIR / "spool")
# A call waits this long past a background tool's timeout for its result, then tells the
# caller it did not answer (a later result is passed on as news).
KOE_BACKGROUND_TOOL_GRACE_SECONDS = env_float("KOE_BACKGROUND_TOOL_GRACE_SECONDS", 10.0)
# Redis (the broker) hands a message no worker confirmed to another worker after this
# long: longer than any task's time limit (300 s), so a slow task is never run twice, yet
# a task whose worker died runs again within minutes, not Redis's default hour. Workers
# look for such messages every few seconds (a tenth of the timeout, at most 10 s): kombu's
# default looks once at start-up and then only every 100 s, so a worker that started a
# moment too early left a dead worker's task waiting that long.
_VISIBILITY_SECONDS = env_int("KOE_CELERY_VISIBILITY_TIMEOUT", 360)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_SECONDS,
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_SECONDS // 10)),
    "unacked_restore_throttle": 1,
}
KOE_HEARTBEAT_SECONDS = env_float("KOE_HEARTBEAT_SECONDS", 10.0)
KOE_INSTANCE_LOST_SECONDS = env_float("KOE_INSTANCE_LOST_SECONDS", 30.0)
# Admission (calls.load): a serving process refuses new calls (close 4013, error
# server_busy) and answers /readyz with 503 once it holds KOE_MAX_CALLS_PER_PROCESS calls
# or its event loop has lagged over KOE_MAX_LOOP_LAG_MS on average for the last two
# seconds (either 0: no such limit), so the calls it has keep their latency. One process
# is one event loop on one core: 80 is 0.8 of the relay's measured knee
# (docs/performance.md).
KOE_MAX_CALLS_PER_PROCESS = env_int("KOE_MAX_CALLS_PER_PROCESS", 80)
KOE_MAX_LOOP_LAG_MS = env_int("KOE_MAX_LOOP_LAG_MS", 100)
# A WebRTC call counts as this many calls towards KOE_MAX_CALLS_PER_PROCESS: decoding and
# encoding its Opus costs about six relayed calls' CPU (bench/webrtc.py, docs/performance.md).
KOE_WEBRTC_CALL_WEIGHT = env_int("KOE_WEBRTC_CALL_WEIGHT", 6)
# 20 ms frames of a WebRTC caller's audio buffered before decoding: aiortc's 4 (80 ms)
# absorbs Internet jitter; 1 saves ~60 ms of voice-to-voice latency on a quiet network.
KOE_WEBRTC_JITTER_FRAMES = env_int("KOE_WEBRTC_JITTER_FRAMES", 4)
# SIGTERM drains: no new call, /readyz 503, live calls go on for up to this long, then end
# as server_shutdown (a second SIGTERM, or SIGINT, ends them at once). Keep a supervisor's
# grace period (Kubernetes' terminationGracePeriodSeconds, compose's stop_grace_period)
# longer than this.
KOE_DRAIN_SECONDS = env_float("KOE_DRAIN_SECONDS", 300.0)
# A provider session is replaced, at a quiet moment, before this age (or before the
# expires_at its session.created gives): OpenAI ends Realtime sessions at 60 minutes. A
# session that drops is replaced at once (agents.realtime.rollover).
KOE_PROVIDER_SESSION_SECONDS = env_float("KOE_PROVIDER_SESSION_SECONDS", 3600.0)
# WebRTC calls (POST /v1/realtime/calls): the STUN/TURN servers Koe's side uses and hands
# to browsers with their session token, as JSON: [{"urls": [...], "username": ..,
# "credential": ..}]. Empty: host candidates only (a LAN, loopback, a public host).
KOE_ICE_SERVERS = env_ice_servers("KOE_ICE_SERVERS")
# Koe's own TURN server (coturn with use-auth-secret, docker-compose's "turn" profile):
# each session token comes with TURN credentials for these URLs, valid this long, signed
# with the secret coturn shares (agents.webrtc.ice).
KOE_TURN_URLS = env_list("KOE_TURN_URLS")
KOE_TURN_SECRET = env_str("KOE_TURN_SECRET")
KOE_TURN_CREDENTIAL_SECONDS = env_int("KOE_TURN_CREDENTIAL_SECONDS", 3600 * 4)

# --- i18n, static, media -----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or VAR_DIR / "static")
if not IS_PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing root
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if IS_PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- security ----------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- logging -----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
