"""Settings from the environment (12-factor). Unset means the embedded default that runs on a bare laptop."""

import os
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("OMNIDESK_DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-omnidesk-key-change-me" if DEBUG else "omnidesk-unset-secret-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "django_dramatiq",
    "omnidesk.plugins",
    "omnidesk.customers",
    "omnidesk.routing",
    "omnidesk.tickets",
    "omnidesk.inbox",
    "omnidesk.sla",
    "omnidesk.reports",
    "omnidesk.workspace",
    "omnidesk.incidents",
    "omnidesk.api",
    "omnidesk.security",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "omnidesk.security.headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "omnidesk.security.middleware.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "omnidesk.inbox.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (web + in-process worker + pollers) otherwise get "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    # A file (threads in tests must share it), one per process so parallel runs never collide.
    _test_db = Path(tempfile.gettempdir()) / f"omnidesk-test-{os.getpid()}.sqlite3"
    DATABASES["default"]["TEST"] = {"NAME": env("OMNIDESK_TEST_SQLITE", default=str(_test_db))}
else:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Under ASGI every request thread would hold its own connection; a pool bounds them
    # (set it below max_connections / processes). 0 = persistent connections per thread instead.
    _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=0)
    if _pool_max:
        # A fixed size by default (HikariCP's advice): all of it is opened as the process starts
        # (config/startup.py), not by the first burst of requests, which waited for new connections
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(env.int("DATABASE_POOL_MIN_SIZE", default=_pool_max), _pool_max),
            "max_size": _pool_max, "timeout": 10,
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Request threads per ASGI web process (config/asgi_http.py); further requests wait on the event loop.
# One per pooled connection: a thread holds at most one, so none waits on the pool.
WEB_REQUEST_THREADS = env.int(
    "OMNIDESK_WEB_REQUEST_THREADS", default=DATABASES["default"].get("OPTIONS", {}).get("pool", {}).get("max_size", 8)
)

# --- channel layer (websockets) -------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s a websocket consumer's
        # BZPOPMIN blocks for: under load the reply came late, the read timed out and the consumer
        # died (close 1006; found by tests/scaleout). Blocking reads need a longer bound.
        # capacity: a socket's backlog beyond it is dropped without a word; channels_redis' 100
        # lost 4 of 1,667 agents' updates in a 10,000-event burst on a loaded box, and 1,000 lost
        # 193 once ingest got faster (tests/scaleout). Each queued update is ~100 bytes in Redis.
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
                               "capacity": 10_000}}
    }
    if env("OMNIDESK_CHANNEL_LAYER", default="pubsub") == "pubsub":
        # One PUBLISH per group send, fanned out to the sockets inside each web process, instead of
        # one queued copy per socket read back one by one: the core layer's reads were a third of the
        # web processes' CPU and its backlog lost updates (docs/benchmarks.md, bench/load.py).
        CHANNEL_LAYERS["default"]["BACKEND"] = "channels_redis.pubsub.RedisPubSubChannelLayer"
        # Pub/Sub channels ignore the database number: the prefix keeps two desks on one Redis apart.
        CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "omnidesk-" + (REDIS_URL.split("?")[0].split("/", 3)[3:] or ["0"])[0]
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- cache (login throttling): shared across web processes through Redis when REDIS_URL is set
if REDIS_URL:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "omnidesk",
        # a Redis outage must answer fast: the login throttle then lets sign-ins through (and logs it)
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- dramatiq (background work) -------------------------------------------------------
# Unset: a stub broker consumed by a worker inside the `serve` process (the embedded default).
DRAMATIQ_BROKER_URL = env("DRAMATIQ_BROKER_URL", default="")
_dramatiq_middleware = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Retries",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
]
if DRAMATIQ_BROKER_URL.startswith(("amqp://", "amqps://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": DRAMATIQ_BROKER_URL},
        "MIDDLEWARE": _dramatiq_middleware,
    }
elif DRAMATIQ_BROKER_URL.startswith(("redis://", "rediss://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        # Requeue a dead worker's in-flight messages after 60 s rather than the stock 10+ minutes.
        "OPTIONS": {"url": DRAMATIQ_BROKER_URL, "heartbeat_timeout": 60_000, "dead_message_ttl": 86_400_000},
        "MIDDLEWARE": _dramatiq_middleware,
    }
elif DRAMATIQ_BROKER_URL:
    raise environ.ImproperlyConfigured(
        f"DRAMATIQ_BROKER_URL must start with redis:// or amqp://, got {DRAMATIQ_BROKER_URL.split(':', 1)[0]}://"
    )
else:
    DRAMATIQ_BROKER = {"BROKER": "dramatiq.brokers.stub.StubBroker", "OPTIONS": {}, "MIDDLEWARE": _dramatiq_middleware}
DRAMATIQ_TASKS_DATABASE = "default"
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "omnidesk.api.schema.AutoSchema",  # lists every error an operation answers
    "DEFAULT_PAGINATION_CLASS": "omnidesk.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "omnidesk.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "omnidesk API",
    "DESCRIPTION": "One queue for every channel.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
# refuses credentials while their username + address is locked out (omnidesk/security/throttle.py)
AUTHENTICATION_BACKENDS = ["omnidesk.security.backends.ThrottledModelBackend"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Behind HTTPS (a TLS-terminating proxy or uvicorn with certificates): secure cookies, HSTS, redirect
# plain HTTP. Never under DEBUG (`make run` serves plain http://127.0.0.1). docs/security.md.
HTTPS = env.bool("OMNIDESK_HTTPS", default=False) and not DEBUG
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("OMNIDESK_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("OMNIDESK_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_SSL_REDIRECT = env.bool("OMNIDESK_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$"]  # load balancers probe over plain HTTP
    if env.bool("OMNIDESK_PROXY_SSL_HEADER", default=False):
        # only when the proxy always sets X-Forwarded-Proto (and strips the client's)
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- omnidesk -------------------------------------------------------------------------
OMNIDESK = {
    # Webhook bodies above this are refused with 413 before they are read in full.
    "WEBHOOK_MAX_BYTES": env.int("OMNIDESK_WEBHOOK_MAX_BYTES", default=1024 * 1024),
    "ATTACHMENT_MAX_BYTES": env.int("OMNIDESK_ATTACHMENT_MAX_BYTES", default=25 * 1024 * 1024),
    # All the files of one agent reply uploaded together: above this the API answers 413.
    "REPLY_UPLOAD_MAX_BYTES": env.int("OMNIDESK_REPLY_UPLOAD_MAX_BYTES", default=50 * 1024 * 1024),
    "ATTACHMENT_BLOCKED_TYPES": env.list(
        "OMNIDESK_ATTACHMENT_BLOCKED_TYPES",
        default=["application/x-msdownload", "application/x-dosexec", "application/x-sh"],
    ),
    # Pending events older than this are re-enqueued by the sweep (broker down, worker killed).
    "SWEEP_PENDING_AFTER_S": env.int("OMNIDESK_SWEEP_PENDING_AFTER_S", default=30),
    "SWEEP_INTERVAL_S": env.int("OMNIDESK_SWEEP_INTERVAL_S", default=60),
    # Small batches: a batch holds its row locks until commit, so big ones make workers wait and
    # deadlock (docs/benchmarks.md: 10 applied 2–3× what 100 did with two workers).
    "APPLY_BATCH": env.int("OMNIDESK_APPLY_BATCH", default=10),
    "OUTBOX_MAX_ATTEMPTS": env.int("OMNIDESK_OUTBOX_MAX_ATTEMPTS", default=12),
    # Due replies are re-enqueued this often; a reply claimed longer ago than OUTBOX_STALE_SENDING_S
    # belongs to a sender that died mid-send and is sent again with the same idempotency key.
    "OUTBOX_SWEEP_INTERVAL_S": env.float("OMNIDESK_OUTBOX_SWEEP_INTERVAL_S", default=30.0),
    "OUTBOX_STALE_SENDING_S": env.float("OMNIDESK_OUTBOX_STALE_SENDING_S", default=300.0),
    # Platform timestamps older than this fall back to receipt time (historic imports need years).
    "MAX_MESSAGE_AGE_DAYS": env.int("OMNIDESK_MAX_MESSAGE_AGE_DAYS", default=3650),
    "IMPORT_MAX_BYTES": env.int("OMNIDESK_IMPORT_MAX_BYTES", default=50 * 1024 * 1024),
    # Encrypts channel-account secrets stored in the database; defaults to a key derived from SECRET_KEY.
    "ENCRYPTION_KEY": env("OMNIDESK_ENCRYPTION_KEY", default=""),
    # Complaint spikes (docs/incidents.md): a term's sentiment-weighted count in the last window must
    # reach FACTOR × its baseline per window and MIN_COUNT messages; "suggest" waits for a manager.
    "INCIDENT_DETECT_INTERVAL_S": env.int("OMNIDESK_INCIDENT_DETECT_INTERVAL_S", default=60),
    "INCIDENT_WINDOW_S": env.int("OMNIDESK_INCIDENT_WINDOW_S", default=900),
    "INCIDENT_BUCKET_S": env.int("OMNIDESK_INCIDENT_BUCKET_S", default=300),
    "INCIDENT_BASELINE_S": env.int("OMNIDESK_INCIDENT_BASELINE_S", default=7 * 86400),
    "INCIDENT_FACTOR": env.float("OMNIDESK_INCIDENT_FACTOR", default=3.0),
    "INCIDENT_MIN_COUNT": env.int("OMNIDESK_INCIDENT_MIN_COUNT", default=10),
    "INCIDENT_ON_SPIKE": env("OMNIDESK_INCIDENT_ON_SPIKE", default="open"),  # open | suggest
    "INCIDENT_COOLDOWN_S": env.int("OMNIDESK_INCIDENT_COOLDOWN_S", default=3600),
    "INCIDENT_FOLLOW_UP_TEXT": env(
        "OMNIDESK_INCIDENT_FOLLOW_UP_TEXT",
        default="The problem you told us about has been fixed. Thank you for your patience; "
        "reply here if anything still does not work.",
    ),
    # Failed sign-ins per username + client address (and per address) within the window → 429.
    "LOGIN_MAX_FAILURES": env.int("OMNIDESK_LOGIN_MAX_FAILURES", default=5),
    "LOGIN_MAX_FAILURES_PER_IP": env.int("OMNIDESK_LOGIN_MAX_FAILURES_PER_IP", default=50),
    "LOGIN_WINDOW_S": env.int("OMNIDESK_LOGIN_WINDOW_S", default=15 * 60),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # channel-account secret values never reach a log line (omnidesk/security/redact.py)
    "filters": {"redact_secrets": {"()": "omnidesk.security.redact.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pika": {"level": "CRITICAL"}},
}
