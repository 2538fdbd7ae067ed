"""BatchChat settings: one module, driven by environment variables.

Every variable is listed in `.env.example` and in docs/configuration.md. With none set, the app
runs on a fresh machine: SQLite, the inline runner, `local` search + `extractive`
answers (no keys, no network).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool = False) -> bool:
    """A yes/no variable; anything but the words below stops the app naming it (a typo
    such as `DJANGO_DEBUG=flase` must not silently mean one or the other)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={os.environ[name]!r} is not a yes/no value: use 1 or 0 (also true/false, "
        "yes/no, on/off)."
    )


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={os.environ[name]!r} is not a whole number (e.g. {default})."
        ) from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):  # NaN, infinities
        raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not a number (e.g. {default}).")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in env(name, default).split(",") if part.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env(name, default).strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_prices(name: str) -> dict[str, tuple[float, float]]:
    """`provider[:model]=INPUT/OUTPUT,...`: prices per million input and output tokens,
    e.g. `openai:gpt-4o-mini=0.15/0.60,anthropic=3/15`. A value that cannot be read stops
    the app naming the variable."""
    from django.core.exceptions import ImproperlyConfigured

    prices: dict[str, tuple[float, float]] = {}
    for entry in env_list(name):
        key, sep, value = entry.partition("=")
        price_in, slash, price_out = value.partition("/")
        try:
            if not (sep and slash and key.strip()):
                raise ValueError(entry)
            prices[key.strip()] = (float(price_in), float(price_out))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: cannot read {entry!r}; write provider[:model]=INPUT/OUTPUT "
                "(prices per million tokens), entries separated by commas."
            ) from None
    return prices


# The development key; `batchchat.checks` refuses it when DEBUG is off.
INSECURE_DEV_SECRET_KEY = "django-insecure-batchchat-development-key-do-not-use-in-production"
SECRET_KEY = env("DJANGO_SECRET_KEY", INSECURE_DEV_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "batchchat.apps.BatchChatConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "chats",
    "batches",
    "evaluation",
    "accounts",
    # Login brute-force protection (see "Brute force" below).
    "axes",
    "csp",
    # django-ninja's templates and static files (the HTTP API's docs), so /api/docs serves
    # its own Swagger UI files instead of loading them from a CDN; "ninja" itself is not
    # installed, which would import all of django-ninja in every process at start.
    "batchchat.apps.NinjaAssetsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # No NUL in a path or query value: PostgreSQL refuses it in text (a 500 otherwise).
    "batchchat.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # Before anything reads the body (CSRF parses multipart): a body over the upload
    # limit is refused on its Content-Length.
    "batchchat.middleware.RequestSizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "batchchat.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "batchchat.wsgi.application"
ASGI_APPLICATION = "batchchat.asgi.application"

# --- Database ---------------------------------------------------------------------------
# SQLite by default; DATABASE_URL (postgres://...) switches to PostgreSQL.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so
    # that concurrent writers wait (up to `timeout` seconds) instead of failing with
    # "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_int("SQLITE_TIMEOUT", 30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: the engine's worker threads need their own connections to the
    # same test database. One file per process keeps parallel runs apart.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"batchchat-test-{os.getpid()}.sqlite3")
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Brute force -------------------------------------------------------------------------
# Logins (the login page and the admin's): django-axes counts failures per account and
# per address in the database; LOGIN_FAILURE_LIMIT failures lock that account, or that
# address, out for LOGIN_LOCKOUT_MINUTES (counted from the last failure). Unlock early
# with `manage.py axes_reset_username NAME` or `axes_reset_ip ADDRESS`. The address is
# REMOTE_ADDR: behind a reverse proxy, have the proxy set it (e.g. gunicorn's
# --forwarded-allow-ips), or every client shares the proxy's address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
AXES_VERBOSE = False
# Behind a reverse proxy: its addresses (or networks), whose X-Forwarded-For is believed
# when counting failures per client address (batchchat/client_address.py).
TRUSTED_PROXIES = env_list("DJANGO_TRUSTED_PROXIES")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"DJANGO_TRUSTED_PROXIES: {_proxy!r} is not an address or network ({_exc})."
        ) from _exc
AXES_CLIENT_IP_CALLABLE = "batchchat.client_address.client_address"
# API tokens (accounts/throttle.py): per address and per token prefix, in the cache.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20)
API_TOKEN_LOCKOUT_MINUTES = env_int("API_TOKEN_LOCKOUT_MINUTES", 15)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/batches/"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ---------------------------------------------------------------
LANGUAGE_CODE = "en"
# One unambiguous date format per language ("1 Dec 2026, 14:05" / "1 déc. 2026, 14:05").
FORMAT_MODULE_PATH = ["batchchat.formats"]
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Security (tightened when DEBUG is off) ---------------------------------------------
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# HTTPS in production (all off by default: a plain-HTTP set-up would otherwise redirect
# forever). Behind a proxy that ends TLS, DJANGO_SECURE_PROXY_SSL_HEADER=1 trusts its
# X-Forwarded-Proto header (only when the proxy sets it and clients cannot reach the app
# directly).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp), always on: scripts and styles only from the app's
# own static files (htmx is vendored; no inline script or style anywhere, and htmx's own
# indicator <style> and eval are switched off in base.html), nothing framed, forms post
# only here. Pico CSS draws its icons with data: images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Style attributes only (htmx sets some while it swaps); they cannot run script.
        # Style elements and sheets stay limited to our own files.
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # The SDKs log request details at DEBUG; keep them quiet so that nothing that
        # could carry a key reaches the log by accident.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the HTTP client inside openai/anthropic SDKs
        "openai": {"level": "WARNING"},
        "anthropic": {"level": "WARNING"},
        # django-axes logs every login at INFO; failures and lock-outs are WARNING.
        "axes": {"level": "WARNING"},
    },
}

# --- Batches ----------------------------------------------------------------------------
MAX_BATCH_ITEMS = env_int("MAX_BATCH_ITEMS", 10_000)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# Upload drafts (files kept for the column chooser) per user: past either bound, the
# user's oldest drafts are deleted when a new one is saved.
UPLOAD_DRAFTS_PER_USER = env_int("UPLOAD_DRAFTS_PER_USER", 5)
UPLOAD_DRAFT_BYTES_PER_USER = env_int("UPLOAD_DRAFT_BYTES_PER_USER", 3 * MAX_UPLOAD_BYTES)
# The most a batch may store of its uploaded cells and headers (UTF-8 bytes): a batch
# whose rows would hold more is refused with a message naming this limit.
MAX_BATCH_STORED_BYTES = env_int("MAX_BATCH_STORED_BYTES", 5 * MAX_UPLOAD_BYTES)
# Django refuses larger request bodies before our own check can name the limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
BATCH_CONCURRENCY = env_int("BATCH_CONCURRENCY", 8)
BATCH_SLICE_SECONDS = env_float("BATCH_SLICE_SECONDS", 20.0)
# The answer similarity (ROUGE-L F1, 0..1) at or above which a row graded by similarity
# alone passes (README "Evaluation").
GRADE_SIMILARITY_PASS = env_float("GRADE_SIMILARITY_PASS", 0.35)
BATCH_LEASE_SECONDS = env_int("BATCH_LEASE_SECONDS", 120)
BATCH_PARALLEL_SLICES = env_int("BATCH_PARALLEL_SLICES", 2)
# A row whose provider stays overloaded (429/5xx after the pipeline's own retries) rests
# and is tried again, up to this many attempts, before it fails.
BATCH_ROW_MAX_ATTEMPTS = env_int("BATCH_ROW_MAX_ATTEMPTS", 3)
# Admission of the slices callers start (API process-for-duration, the pages' inline
# driver), per server process: see batches/admission.py.
MAX_SLICES_PER_USER = env_int("MAX_SLICES_PER_USER", 4)
MAX_CONCURRENT_SLICES = env_int("MAX_CONCURRENT_SLICES", 8)

# --- Celery (only when a broker is configured; otherwise the inline runner) -------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_RECOVER_SECONDS = env_int("CELERY_BEAT_RECOVER_SECONDS", 60)
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-batches": {
        "task": "batches.tasks.recover_stalled_batches",
        "schedule": float(max(CELERY_BEAT_RECOVER_SECONDS // 2, 1)),
    },
    "delete-expired-drafts": {
        "task": "batches.tasks.delete_expired_drafts",
        "schedule": 3600.0,
    },
}

# --- Economy mode: the providers' batch APIs (batches.economy, issue 25) ----------------
# How often a provider batch is asked how it is doing; its rows' lease (longer than the
# providers' 24 h window); attempts per row (an expired or errored request is sent once
# more in a new provider batch, then the row fails with the provider's reason); requests
# per provider batch (0: the provider's own limit).
ECONOMY_POLL_SECONDS = env_float("ECONOMY_POLL_SECONDS", 60.0)
ECONOMY_LEASE_SECONDS = env_int("ECONOMY_LEASE_SECONDS", 3 * 24 * 3600)
ECONOMY_MAX_ATTEMPTS = env_int("ECONOMY_MAX_ATTEMPTS", 2)
ECONOMY_MAX_REQUESTS = env_int("ECONOMY_MAX_REQUESTS", 0)
CELERY_BEAT_SCHEDULE["poll-provider-batches"] = {
    "task": "batches.tasks.poll_provider_batches",
    "schedule": max(ECONOMY_POLL_SECONDS / 2, 1.0),
}

# --- Background worker, production serving, health, metrics and logs (issue 14) --------
# `manage.py run_worker` drives the slices of active batches without a broker (bin/run
# and bin/serve start one), one slice per batch in turn (a stop ends a slice early).
WORKER_SLICE_SECONDS = env_float("WORKER_SLICE_SECONDS", 10.0)
WORKER_POLL_SECONDS = env_float("WORKER_POLL_SECONDS", 1.0)
WORKER_HEARTBEAT_SECONDS = env_float("WORKER_HEARTBEAT_SECONDS", 5.0)
# Engine processes `run_worker` starts under one parent (0: one per core). One process is
# one GIL: the provider SDKs cost ~2 ms of CPU a call, so cores, not threads, scale it.
WORKER_PROCESSES = env_int("WORKER_PROCESSES", 0)
# A worker not heard from for this long is dead: the pages drive batches again.
WORKER_HEARTBEAT_TIMEOUT = env_float("WORKER_HEARTBEAT_TIMEOUT", 3 * WORKER_HEARTBEAT_SECONDS)
# Health checks and scrapers call the app directly over HTTP: never redirect them to HTTPS
# (DJANGO_SECURE_SSL_REDIRECT).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it is off (404).
METRICS_TOKEN = env("METRICS_TOKEN")
# The provider latency histogram covers the answers of this many last seconds.
METRICS_LATENCY_WINDOW_SECONDS = env_int("METRICS_LATENCY_WINDOW_SECONDS", 3600)
# Static files: WhiteNoise serves them from STATIC_ROOT after `collectstatic`; with DEBUG
# off, names carry a content hash (cached for a year) and gzip copies are made.
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(STATIC_ROOT)))
# (With DEBUG on, runserver serves them from the source folders, unhashed.)
if not DEBUG:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        },
    }
# Logs: LOG_FORMAT=json writes one JSON object per line (batch events carry their fields).
LOG_FORMAT = env("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
LOGGING["formatters"]["json"] = {"()": "batchchat.logs.JsonFormatter"}
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT

# --- AI providers -----------------------------------------------------------------------
# Keys stay here, on the server: nothing reads them but chats.providers.
DEFAULT_AI_PROVIDER = env("DEFAULT_AI_PROVIDER", "extractive")
DEFAULT_SEARCH_PROVIDER = env("DEFAULT_SEARCH_PROVIDER", "local")
OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL")
OPENAI_MODELS = env_list("OPENAI_MODELS", "gpt-4o-mini,gpt-4o")
AZURE_OPENAI_API_KEY = env("AZURE_OPENAI_API_KEY")
AZURE_OPENAI_ENDPOINT = env("AZURE_OPENAI_ENDPOINT")
AZURE_OPENAI_API_VERSION = env("AZURE_OPENAI_API_VERSION", "2024-10-21")
AZURE_OPENAI_DEPLOYMENTS = env_list("AZURE_OPENAI_DEPLOYMENTS")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env("ANTHROPIC_BASE_URL")
ANTHROPIC_MODELS = env_list("ANTHROPIC_MODELS", "claude-sonnet-5-5,claude-haiku-5-5")
COMPATIBLE_BASE_URL = env("COMPATIBLE_BASE_URL")
COMPATIBLE_API_KEY = env("COMPATIBLE_API_KEY")
COMPATIBLE_MODELS = env_list("COMPATIBLE_MODELS")
PROVIDER_TIMEOUT = env_float("PROVIDER_TIMEOUT", 60.0)
PROVIDER_MAX_ATTEMPTS = env_int("PROVIDER_MAX_ATTEMPTS", 5)
PROVIDER_BACKOFF_BASE = env_float("PROVIDER_BACKOFF_BASE", 1.0)
PROVIDER_BACKOFF_MAX = env_float("PROVIDER_BACKOFF_MAX", 30.0)
# Circuit breaker per provider and model (see docs/running-batches.md): after this many
# connection failures, timeouts or 5xx in a row no call starts (rows wait as pending) but
# one probe every PROVIDER_BREAKER_PROBE_SECONDS; 0 turns the breaker off.
PROVIDER_BREAKER_FAILURES = env_int("PROVIDER_BREAKER_FAILURES", 5)
PROVIDER_BREAKER_PROBE_SECONDS = env_float("PROVIDER_BREAKER_PROBE_SECONDS", 5.0)
# An optional safety cap on calls in flight to one provider, per process; 0 = none (the
# batch concurrency is what runs). run_batch says when it is in force.
PROVIDER_MAX_CONCURRENCY = env_int("PROVIDER_MAX_CONCURRENCY", 0)

# --- Provider quotas: requests and tokens per minute (see docs/running-batches.md) ---
# Unset means unlimited (and no work per call). With Redis (REDIS_URL, or a redis://
# Celery broker) the budget is shared by every process and machine on the same key.
PROVIDER_RATE_LIMITS = {
    provider: {"rpm": env_float(f"{prefix}_RPM", 0.0), "tpm": env_float(f"{prefix}_TPM", 0.0)}
    for provider, prefix in (
        ("openai", "OPENAI"),
        ("azure", "AZURE_OPENAI"),
        ("anthropic", "ANTHROPIC"),
        ("compatible", "COMPATIBLE"),
    )
}
# Per model, overriding its provider's: "openai:gpt-4o=500/30000, anthropic:claude-x=50/0"
# (requests per minute / tokens per minute; 0 = unlimited).
PROVIDER_MODEL_RATE_LIMITS = {}
for _entry in env_list("PROVIDER_MODEL_RATE_LIMITS"):
    _name, _, _limits = _entry.partition("=")
    _rpm, _, _tpm = _limits.partition("/")
    try:
        PROVIDER_MODEL_RATE_LIMITS[_name.strip()] = {
            "rpm": float(_rpm or 0),
            "tpm": float(_tpm or 0),
        }
    except ValueError:
        raise ImproperlyConfigured(
            f"PROVIDER_MODEL_RATE_LIMITS: {_entry!r} is not provider:model=RPM/TPM"
        ) from None
# How much of a minute's budget may go out at once (providers enforce per-minute limits
# over shorter windows, so requests are spread evenly).
RATE_LIMIT_BURST_SECONDS = env_float("RATE_LIMIT_BURST_SECONDS", 1.0)
# Output tokens budgeted for a call before the provider reports its usage.
RATE_LIMIT_OUTPUT_TOKENS = env_int("RATE_LIMIT_OUTPUT_TOKENS", 512)
REDIS_URL = env("REDIS_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
# Prices per million tokens, for the estimated cost of a batch (none: no estimate).
AI_PRICES = env_prices("AI_PRICES")
AI_PRICE_CURRENCY = env("AI_PRICE_CURRENCY", "USD")

# --- Search providers -------------------------------------------------------------------
SEARCH_MAX_RESULTS = env_int("SEARCH_MAX_RESULTS", 5)
LOCAL_SEARCH_INDEX = env("LOCAL_SEARCH_INDEX", str(BASE_DIR / "var" / "search-index.sqlite3"))
LOCAL_SEARCH_DOCS = env("LOCAL_SEARCH_DOCS", str(BASE_DIR / "sample" / "docs"))
GOOGLE_SEARCH_API_KEY = env("GOOGLE_SEARCH_API_KEY")
GOOGLE_SEARCH_ENGINE_ID = env("GOOGLE_SEARCH_ENGINE_ID")
GOOGLE_SEARCH_URL = env("GOOGLE_SEARCH_URL", "https://www.googleapis.com/customsearch/v1")
SEARXNG_URL = env("SEARXNG_URL")
CANADACA_SEARCH_URL = env("CANADACA_SEARCH_URL")
CANADACA_SEARCH_KEY = env("CANADACA_SEARCH_KEY")

# --- Guard: personal information and abuse (chats.guard) ----------------------------------
# block: the question is answered with a fixed message, nothing is sent anywhere;
# redact: findings are replaced by placeholders and the redacted text goes on.
GUARD_PII_ACTION = env_choice("GUARD_PII_ACTION", "block", ("block", "redact"))
GUARD_ABUSE_ACTION = env_choice("GUARD_ABUSE_ACTION", "block", ("block", "redact"))
# Off: the stored question is the redacted one. On: the original is stored too.
GUARD_STORE_ORIGINAL = env_bool("GUARD_STORE_ORIGINAL", False)
# Words and phrases added to the guard's lists (chats/guard/data/*.txt), comma-separated.
GUARD_PROFANITY_WORDS = env_list("GUARD_PROFANITY_WORDS")
GUARD_THREAT_WORDS = env_list("GUARD_THREAT_WORDS")
# Second stage: the chat's AI model checks the redacted question (never for extractive).
GUARD_AI_CHECK = env_bool("GUARD_AI_CHECK", False)
GUARD_AI_CHECK_ATTEMPTS = env_int("GUARD_AI_CHECK_ATTEMPTS", 2)
