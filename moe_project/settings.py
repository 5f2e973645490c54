"""moe-router settings: one module, every value from the environment.

The embedded default (no variables set) runs on SQLite under ``var/``, keeps live state in
process, uses an in-memory channel layer and a filesystem Celery broker. ``DATABASE_URL`` and
``REDIS_URL`` switch to the scale-out setup; nothing else changes.
"""

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from moe_project.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_mapping,
    env_rate,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MOE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use DJANGO_SECRET_KEY(_FILE); otherwise a random key kept in var/ across restarts."""
    key = env_secret("DJANGO_SECRET_KEY")
    if key:
        return key
    if "DJANGO_SECRET_KEY" in os.environ or os.environ.get("DJANGO_SECRET_KEY_FILE"):
        # Given but empty: a generated key per host would make each host refuse the others'
        # tokens and sessions behind a load balancer.
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or its _FILE) is set but empty")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Production hardening (`manage.py check --deploy` is clean with DJANGO_SECURE=true).
SECURE = env_bool("DJANGO_SECURE", False)
SECURE_SSL_REDIRECT = SECURE
# Health probes reach the process directly over http (container and load-balancer checks).
SECURE_REDIRECT_EXEMPT = [r"^api/v1/ping$", r"^api/v1/health$"]
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "registry",
    "routing",
    "telemetry",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last on purpose: WhiteNoise is sync-only, and under ASGI every async-capable middleware
    # *inside* a sync-only one runs synchronously too, so the whole chain costs one thread hop
    # instead of one per middleware method (~60 us each). It still serves /static/ first.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "moe_project.urls"
ASGI_APPLICATION = "moe_project.asgi.application"
WSGI_APPLICATION = "moe_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # WAL lets the web process read while the Celery worker writes; IMMEDIATE avoids
            # "database is locked" on upgrade from a read to a write transaction.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker, live state -------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "moe",
        }
    }
    CACHES["jobs"] = CACHES["default"]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "moe:ws"},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # The ids of queued jobs (moe_project/jobs.py) outlive a restart, as the jobs do in
        # the filesystem broker: a job queued before it is still answered after it.
        "jobs": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "jobs"),
        },
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_FS_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
    # Celery's Redis result backend retries a lost connection 20 times, a second apart: with
    # Redis down, queuing a job answered its 503 after ~19 s, past many clients' timeouts.
    # Five tries within ~3.5 s ride out a blip and answer an outage in time.
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
        "retry_policy": {
            "max_retries": 5,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        }
    }
else:
    # A broker that needs no server: kombu's filesystem transport under var/celery.
    for sub in ("in", "processed", "results", "control"):
        (CELERY_FS_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FS_DIR / "in"),
        "data_folder_out": str(CELERY_FS_DIR / "in"),
        "processed_folder": str(CELERY_FS_DIR / "processed"),
        # Exchange tables (broadcast, pidbox); kombu's default is the working directory.
        "control_folder": str(CELERY_FS_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = env_str(
        "CELERY_RESULT_BACKEND", f"file://{(CELERY_FS_DIR / 'results').as_posix()}"
    )
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = timedelta(days=1)
# A running job answers STARTED (not PENDING) at its status endpoint.
CELERY_TASK_TRACK_STARTED = True
# A job queued this long with no worker taking any job since: health says degraded, and the
# job's status says no worker has picked it up (telemetry/heartbeat.py).
MOE_JOB_PICKUP_SECONDS = env_float("MOE_JOB_PICKUP_SECONDS", 60.0, minimum=1.0)
# A worker not seen for this long is lost (it stamps every sixth of it): a job it STARTED says
# so at its status endpoint, and health says degraded (telemetry/heartbeat.py). A worker's
# stamp carries its own value; a reader waits for the longer of that and its own.
MOE_WORKER_LOST_SECONDS = env_float("MOE_WORKER_LOST_SECONDS", 30.0, minimum=1.0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"

# --- Auth, API ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
# Operators (staff, or the operators group) hold the operator permissions wherever Django asks,
# so the admin shows them what the API lets them do (registry/admin_access.py).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "registry.admin_access.OperatorPermissionBackend",
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["moe_project.json_api.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["moe_project.json_api.OrjsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "moe_project.negotiation.SingleRendererNegotiation",
    "EXCEPTION_HANDLER": "moe_project.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["moe_project.throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_rate("MOE_RATE_LIMIT", "100000/min")},
    # Proxies in front whose X-Forwarded-For the rate limit of anonymous requests (the token
    # endpoint) may trust; 0: the connecting address, which a client cannot forge.
    "NUM_PROXIES": env_int("MOE_NUM_PROXIES", 0, minimum=0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("MOE_JWT_ACCESS_MINUTES", 60, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("MOE_JWT_REFRESH_DAYS", 7, minimum=1)),
    "SIGNING_KEY": SECRET_KEY,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "moe-router API",
    "DESCRIPTION": "Mixture-of-Experts routing control plane.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# --- Limits on what a client may send -------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MOE_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
MOE_MAX_JSON_DEPTH = env_int("MOE_MAX_JSON_DEPTH", 32, minimum=2)
MOE_MAX_STRING_LENGTH = env_int("MOE_MAX_STRING_LENGTH", 4096, minimum=16)
MOE_BATCH_MAX_ITEMS = env_int("MOE_BATCH_MAX_ITEMS", 10000, minimum=1)

# --- Routing --------------------------------------------------------------------------------
MOE_OPERATOR_GROUP = env_str("MOE_OPERATOR_GROUP", "operators")
MOE_ALLOWED_ENDPOINT_HOSTS = env_list("MOE_ALLOWED_ENDPOINT_HOSTS", ["localhost", "127.0.0.1"])
# The strategies routing.core.strategies registers (without importing it here: it loads torch;
# tests/test_bad_configuration_stops_start_up_naming_the_variable.py checks the two agree).
ROUTING_STRATEGY_NAMES = (
    "switch_transformer",
    "top_k",
    "semantic",
    "tda_aware",
    "consistent_hash",
    "power_of_two",
    "adaptive",
)
MOE_DEFAULT_STRATEGY = env_choice("MOE_DEFAULT_STRATEGY", "adaptive", ROUTING_STRATEGY_NAMES)
# The API's top_k limit (routing.core.config.EngineConfig.max_top_k; the same test checks it).
ROUTING_MAX_TOP_K = 8
# A bearer token Prometheus must send to /metrics (MOE_METRICS_TOKEN_FILE: read from a file);
# empty: /metrics asks for nothing (keep it off the public side then).
MOE_METRICS_TOKEN = env_secret("MOE_METRICS_TOKEN").strip()
MOE_DEFAULT_TOP_K = env_int("MOE_DEFAULT_TOP_K", 2, minimum=1, maximum=ROUTING_MAX_TOP_K)
# The torch device the gate runs on (cpu, cuda, cuda:N, mps).
MOE_DEVICE = env_str("MOE_DEVICE", "").strip() or "cpu"
if not re.fullmatch(r"cpu|cuda(:[0-9]+)?|mps", MOE_DEVICE):
    raise ImproperlyConfigured(f"MOE_DEVICE must be cpu, cuda, cuda:N or mps, got {MOE_DEVICE!r}")
MOE_STATE_BACKEND = env_choice(
    "MOE_STATE_BACKEND", "redis" if REDIS_URL else "local", ("local", "redis")
)
if MOE_STATE_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("MOE_STATE_BACKEND=redis needs REDIS_URL")
# With Redis: how old a worker's cached view of the shared state may get (other workers'
# breaker changes reach it within this plus one round trip).
MOE_STATE_VIEW_MAX_AGE_MS = env_float("MOE_STATE_VIEW_MAX_AGE_MS", 20.0, minimum=1.0)
# Without Redis, other processes' registry changes are seen by polling the version row.
MOE_REGISTRY_POLL_SECONDS = env_float("MOE_REGISTRY_POLL_SECONDS", 1.0, minimum=0.0)
MOE_HISTORY_RETENTION_DAYS = env_float("MOE_HISTORY_RETENTION_DAYS", 30.0, minimum=0.01)
# Where each process spools routing history until the flush (embedded default, or Redis down).
MOE_HISTORY_DIR = env_str("MOE_HISTORY_DIR", str(VAR_DIR / "history"))
MOE_PENDING_TTL_SECONDS = env_float("MOE_PENDING_TTL_SECONDS", 3600.0, minimum=1.0)
# Who can serve a request: a request of type T goes to services whose service_type is in
# MOE_TYPE_ACCEPTS[T] (default: T itself). A request with no type, or a type that is neither
# in the mapping nor any service's type, may go to every type ("any") or to none ("reject").
MOE_TYPE_ACCEPTS = env_mapping("MOE_TYPE_ACCEPTS", {})
MOE_UNKNOWN_TYPE = env_choice("MOE_UNKNOWN_TYPE", "any", ("any", "reject"))
# The objective every learned strategy optimises (routing/core/objective.py).
MOE_OBJECTIVE = env_choice(
    "MOE_OBJECTIVE", "success_minus_latency", ("success_minus_latency", "success_within_slo")
)
MOE_LATENCY_COST_MS = env_float("MOE_LATENCY_COST_MS", 1000.0, minimum=1.0)
MOE_LATENCY_SLO_MS = env_float("MOE_LATENCY_SLO_MS", 1000.0, minimum=1.0)
# Exploration of the learned strategies: epsilon starts at MOE_EXPLORATION_RATE and decays
# with the evidence in the request's context down to MOE_EXPLORATION_MIN. Of it,
# MOE_EXPLORATION_UNIFORM goes to any candidate (every candidate keeps a known probability,
# which off-policy evaluation needs); the rest to a candidate that may be better than the
# greedy pick (its optimistic estimate reaches the greedy pick's estimate).
MOE_EXPLORATION_RATE = env_float("MOE_EXPLORATION_RATE", 0.05, minimum=0.0, maximum=1.0)
MOE_EXPLORATION_MIN = env_float("MOE_EXPLORATION_MIN", 0.01, minimum=0.0, maximum=1.0)
if MOE_EXPLORATION_MIN > MOE_EXPLORATION_RATE:
    raise ImproperlyConfigured(
        f"MOE_EXPLORATION_MIN ({MOE_EXPLORATION_MIN}) must not exceed MOE_EXPLORATION_RATE "
        f"({MOE_EXPLORATION_RATE})"
    )
MOE_EXPLORATION_UNIFORM = env_float("MOE_EXPLORATION_UNIFORM", 0.002, minimum=0.0, maximum=1.0)
# Forced sampling: in this share of the greedy picks (at most 1; 0 turns it off) a candidate
# with fewer than log(1 + evidence) outcomes near the request's complexity is tried instead.
MOE_FORCED_SAMPLING_SHARE = env_float("MOE_FORCED_SAMPLING_SHARE", 0.3, minimum=0.0, maximum=1.0)
# ... but not a candidate the data rule out: its estimate plus this many standard deviations
# stays below the greedy pick's estimate ("inf": every under-sampled candidate) ...
MOE_FORCED_SAMPLING_WIDTH = env_float("MOE_FORCED_SAMPLING_WIDTH", 2.5, minimum=0.0)
# ... unless it was not observed in the last this-many outcomes of the request type: what
# ruled it out (an incident, a slow spell) may be over, so it is measured again.
MOE_FORCED_SAMPLING_RECHECK = env_int("MOE_FORCED_SAMPLING_RECHECK", 500, minimum=1)
# Panic routing: when circuit breakers alone shut out every service able to serve a request,
# route among them anyway (Envoy's healthy-panic routing) instead of answering 503.
MOE_BREAKER_PANIC = env_bool("MOE_BREAKER_PANIC", True)
# With Redis, every worker's online learner also learns from the outcomes reported to the
# other workers (routing/shared_learning.py); false: each worker learns from its own.
MOE_SHARED_LEARNING = env_bool("MOE_SHARED_LEARNING", True)
# Seed of each worker's routing randomness (exploration, power-of-two sampling); unset (the
# default: -1): seeded by the OS. A fixed seed makes a single-worker run repeatable (simulations).
MOE_ROUTING_SEED = env_int("MOE_ROUTING_SEED", -1, minimum=-1)
# Online learning forgets old outcomes slowly: each outcome weighs the older ones of its
# complexity segment down by this factor (0.998 ~ the last 500); a detected change (a service
# starting to fail or slow down) forgets faster (routing/core/learning.py).
MOE_LEARNING_DISCOUNT = env_float("MOE_LEARNING_DISCOUNT", 0.998, minimum=0.5, maximum=1.0)
# A new learned version goes live only if its off-policy estimate beats the active one's with
# this one-sided confidence and at least this effective sample size.
MOE_OPE_CONFIDENCE = env_float("MOE_OPE_CONFIDENCE", 0.95, minimum=0.5)
MOE_OPE_MIN_ESS = env_float("MOE_OPE_MIN_ESS", 30.0, minimum=1.0)
# Leases: an unreported selection stops counting in flight after the service's expected
# service time (MOE_LEASE_LATENCY_FACTOR x its latency EWMA, within [MIN, MAX]), or after
# MOE_LEASE_DEFAULT_SECONDS while nothing has been measured.
MOE_LEASE_DEFAULT_SECONDS = env_float("MOE_LEASE_DEFAULT_SECONDS", 0.05, minimum=0.001)
MOE_LEASE_LATENCY_FACTOR = env_float("MOE_LEASE_LATENCY_FACTOR", 2.0, minimum=1.0)
MOE_LEASE_MIN_SECONDS = env_float("MOE_LEASE_MIN_SECONDS", 0.01, minimum=0.001)
MOE_LEASE_MAX_SECONDS = env_float("MOE_LEASE_MAX_SECONDS", 30.0, minimum=0.01)
# Slow start: a service that joins the fleet or becomes routable again (breaker closed or
# half-open, health back) gets a share that grows linearly to full over this long; 0: off.
MOE_SLOW_START_SECONDS = env_float("MOE_SLOW_START_SECONDS", 10.0, minimum=0.0)
MOE_FORWARD_TIMEOUT_SECONDS = env_float("MOE_FORWARD_TIMEOUT_SECONDS", 5.0, minimum=0.01)
MOE_HEALTH_PROBE_TIMEOUT_SECONDS = env_float("MOE_HEALTH_PROBE_TIMEOUT_SECONDS", 2.0, minimum=0.1)

# --- Proxy and forwarding (/api/v1/proxy/<path>, "forward": true; routing/forwarding.py) -----
# An attempt must produce response headers within ATTEMPT_TIMEOUT (and connect within
# CONNECT_TIMEOUT); the whole call, retries included, within DEADLINE, or sooner when the
# client sends X-Moe-Deadline-Ms.
MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS = env_float(
    "MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS", MOE_FORWARD_TIMEOUT_SECONDS, minimum=0.01
)
MOE_PROXY_CONNECT_TIMEOUT_SECONDS = env_float(
    "MOE_PROXY_CONNECT_TIMEOUT_SECONDS", 1.0, minimum=0.01
)
MOE_PROXY_DEADLINE_SECONDS = env_float("MOE_PROXY_DEADLINE_SECONDS", 15.0, minimum=0.01)
# Retries add at most RATIO x the requests of the last WINDOW seconds, plus MIN_RETRIES per
# window (so a quiet router can still retry); counted per process.
MOE_RETRY_BUDGET_RATIO = env_float("MOE_RETRY_BUDGET_RATIO", 0.2, minimum=0.0)
MOE_RETRY_BUDGET_WINDOW_SECONDS = env_float("MOE_RETRY_BUDGET_WINDOW_SECONDS", 10.0, minimum=0.1)
MOE_RETRY_BUDGET_MIN_RETRIES = env_int("MOE_RETRY_BUDGET_MIN_RETRIES", 3, minimum=0)
# A 429's Retry-After pauses that service for at most this long.
MOE_PROXY_MAX_COOLDOWN_SECONDS = env_float("MOE_PROXY_MAX_COOLDOWN_SECONDS", 60.0, minimum=0.0)
# A response's first bytes are held back this far, so that a failure within them can still
# be retried; beyond it the body streams and a failure can only be reported.
MOE_PROXY_RETRY_BUFFER_BYTES = env_int("MOE_PROXY_RETRY_BUFFER_BYTES", 65536, minimum=0)
# Largest request body the proxy accepts (413 above); it is spooled to disk, not held in memory.
MOE_PROXY_MAX_BODY_BYTES = env_int("MOE_PROXY_MAX_BODY_BYTES", 1024**3, minimum=1024)

MOE_WS_ALLOWED_ORIGINS = env_list("MOE_WS_ALLOWED_ORIGINS", [])
# Route events are coalesced: one message per flush interval, at most this many decisions.
MOE_WS_FLUSH_SECONDS = env_float("MOE_WS_FLUSH_SECONDS", 0.1, minimum=0.01)
MOE_WS_MAX_ROUTE_ITEMS = env_int("MOE_WS_MAX_ROUTE_ITEMS", 100, minimum=1)

# --- I18N, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice(
            "MOE_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True
        ),
    },
    "loggers": {
        "django.request": {"level": "ERROR"},
        # channels-redis logs every send to a lingering group member at INFO.
        "channels_redis": {"level": "WARNING"},
    },
}
