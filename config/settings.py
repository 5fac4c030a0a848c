"""Settings for Tracker, read from the environment.

With nothing set, Tracker runs as the embedded demo: a SQLite file in the project folder,
Celery tasks run eagerly in-process, mail printed to the console, DEBUG on.
Set DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, ALLOWED_HOSTS and EMAIL_HOST for a real deployment
(see README.md, "Configuration").
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, *, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name, *, default=()):
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or list(default)


# `make demo` sets TRACKER_DEMO: the site as visitors get it (DEBUG off, so its own 404 page,
# static files from WhiteNoise), plus pages the demo serves itself for its sources to watch
# (tracker/demo/sources.py). Never on a real deployment.
TRACKER_DEMO = env_bool("TRACKER_DEMO", default=False)

# A deployment sets SECRET_KEY; without one we are a developer's demo, so DEBUG defaults on.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", default=not SECRET_KEY and not TRACKER_DEMO)
if not SECRET_KEY:
    if TRACKER_DEMO:
        # Throwaway: `make demo` passes one kept in .venv, so its processes sign alike.
        SECRET_KEY = secrets.token_urlsafe(50)
    elif not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    else:
        SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # Before the admin: the Spanish and English columns of the texts people read
    # (tracker/translation.py), edited side by side.
    "modeltranslation",
    # The admin, with the staff's start page and sections (tracker.sites).
    "tracker.apps.TrackerAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "auditlog",
    # Login throttling: failed attempts, lockouts and their admin (see "Login lockout" below).
    "axes",
    "tracker",
]

MIDDLEWARE = [
    # First, so that its duration covers everything and every response carries the request id.
    "tracker.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A Content-Security-Policy on every response, chosen per kind of page.
    "tracker.content_policy.ContentPolicyMiddleware",
    # Static files straight from gunicorn, compressed and cached for ever (hashed names).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The public pages' language: the visitor's choice (cookie), else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    # The API's ?lang=es, which outranks Accept-Language for the texts it returns.
    "tracker.middleware.ApiLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    # ETags on GET responses, and 304 Not Modified for clients that already have them.
    "django.middleware.http.ConditionalGetMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The audit trail's actor, read when an entry is written (the API authenticates later).
    "tracker.audit.AuditActorMiddleware",
    # Last: turns a login refused by the lockout into the "too many attempts" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a login from a locked-out account and address before the
# password is checked (it needs `request` in authenticate(); the admin's login passes it).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The public pages and the digests ship in these languages (tracker/locale).
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "tracker" / "locale"]
# The content's languages (tracker/translation.py): a text missing in the reader's language is
# shown in the other one, which is where the original is (tracker/texts.py marks it).
MODELTRANSLATION_DEFAULT_LANGUAGE = "en"
MODELTRANSLATION_FALLBACK_LANGUAGES = {"default": ("en", "es")}
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# English times on a 24-hour clock (tracker/formats/en): no "a.m." before a full stop.
FORMAT_MODULE_PATH = ["tracker.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# With DEBUG off, hashed and compressed names, which need `collectstatic` first (the image runs
# it when built). Tests without collected files use plain names (tests/conftest.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TRACKER_DEMO
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# The demo runs with DEBUG off and no collectstatic: WhiteNoise serves the apps' own folders.
WHITENOISE_USE_FINDERS = DEBUG or TRACKER_DEMO

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_FILTER_BACKENDS": [
        "tracker.api.filters.FilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "tracker.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "tracker.api.throttling.AnonymousThrottle",
        "tracker.api.throttling.UserThrottle",
    ],
    "EXCEPTION_HANDLER": "tracker.api.exceptions.handle_exception",
    # JSON bodies are held to DATA_UPLOAD_MAX_MEMORY_SIZE too (a 413, not a parse of 3 MB).
    "DEFAULT_PARSER_CLASSES": [
        "tracker.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# How many proxies (load balancer, nginx) stand in front of the app: only the X-Forwarded-For
# entries they wrote are believed. 0, the default, means clients connect directly and the
# header is ignored (tracker/clients.py).
TRACKER_TRUSTED_PROXIES = int(os.environ.get("TRACKER_TRUSTED_PROXIES", "0"))
# Requests per period an anonymous client may make to the API, e.g. "600/minute".
TRACKER_API_ANON_RATE = os.environ.get("TRACKER_API_ANON_RATE", "600/minute")
# The same for each signed-in user who is not staff (staff are not throttled).
TRACKER_API_USER_RATE = os.environ.get("TRACKER_API_USER_RATE", "1200/minute")
# Sign-ups to the digests a client address may make per hour (0: no limit). Whoever asks,
# an address gets one confirmation mail per 10 minutes at most (tracker/digests.py).
TRACKER_SIGNUPS_PER_HOUR = int(os.environ.get("TRACKER_SIGNUPS_PER_HOUR", "10"))
SPECTACULAR_SETTINGS = {
    "TITLE": "Tracker API",
    "DESCRIPTION": "Recommendations, their owners, status history and evidence, and progress "
    "over time. Anonymous clients read published data; staff write with their permissions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # One name for the statuses, wherever a field carries them (status, previous_status).
    "ENUM_NAME_OVERRIDES": {"StatusEnum": "tracker.models.Recommendation.Status"},
    # Swagger UI's files ship with the project (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Every read documents ?lang= (the texts' language).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tracker.api.schema.add_lang_parameter",
    ],
}

# Login lockout (django-axes): after this many failed logins for one username from one
# address, that pair is refused for the lockout time. Another address can still log in to the
# account, so an attacker cannot lock staff out; an admin unlocks early (README, "Security").
TRACKER_LOGIN_FAILURE_LIMIT = int(os.environ.get("TRACKER_LOGIN_FAILURE_LIMIT", "5"))
TRACKER_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("TRACKER_LOGIN_LOCKOUT_MINUTES", "15"))
AXES_FAILURE_LIMIT = TRACKER_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=TRACKER_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "tracker.clients.client_ip"
AXES_LOCKOUT_CALLABLE = "tracker.lockout.lockout_response"
# A successful login clears the count; attempts made while locked out do not extend the lockout,
# so the time the lockout page gives holds.
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# No banner in the log of every process and command at start-up.
AXES_VERBOSE = False

# Where browsers report Content-Security-Policy violations (report-uri), if anywhere. The
# policies themselves are per kind of page, in tracker/content_policy.py.
TRACKER_CSP_REPORT_URI = os.environ.get("TRACKER_CSP_REPORT_URI", "")

# Celery: without a broker, tasks run eagerly in-process (the embedded demo).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
# A task whose process died (OOM killer, a parser crash) goes back to the queue at once instead
# of being acknowledged; monitoring.start_claimed_check stops a check that keeps doing it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = TIME_ZONE
# Schedules live in the database, editable in the admin (django-celery-beat).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# With Redis, a task taken by a worker that died unacknowledged is handed out again after
# this many seconds; it must outlast the longest retry countdown (8 minutes).
CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # A worker killed while handing such tasks out holds that lock until it expires.
    "unacked_mutex_expire": min(300, CELERY_VISIBILITY_TIMEOUT),
    # A hung Redis must not hang the request that queues a task: it fails soft instead.
    "socket_connect_timeout": 3,
    "socket_timeout": 5,
}


# The cache also counts each host's running checks, so workers must share it: Redis when
# CACHE_URL (or a Redis broker) is given, else memory, which suits one process.
def redis_database(url, number):
    """The same Redis server as `url`, database `number`: the cache keeps off the queue's."""
    base = url.split("?", 1)[0].rstrip("/")
    if base.rsplit("/", 1)[-1].isdigit():
        base = base.rsplit("/", 1)[0]
    return f"{base}/{number}"


CACHE_URL = os.environ.get("CACHE_URL") or (
    redis_database(CELERY_BROKER_URL, 1) if CELERY_BROKER_URL.startswith("redis") else ""
)
CACHES = {
    "default": (
        {
            # Fails soft: a Redis outage must not take the site and API down (tracker/cache.py).
            "BACKEND": "tracker.cache.FailSoftRedisCache",
            "LOCATION": CACHE_URL,
            # A hung Redis answers within a second or counts as down.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Seconds before the first retry of a check that failed on network trouble (then doubling).
# Cache API reads until the next write; only worth it (and only safe across processes) with
# a shared cache.
TRACKER_CACHE_RESPONSES = env_bool("TRACKER_CACHE_RESPONSES", default=bool(CACHE_URL))
TRACKER_CHECK_RETRY_SECONDS = int(os.environ.get("TRACKER_CHECK_RETRY_SECONDS", "30"))

# Mail: SMTP when EMAIL_HOST is set, else printed to the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 30
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Tracker <tracker@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Logs: readable lines, or one JSON object a line with TRACKER_LOG_FORMAT=json (for a log
# collector). Requests are logged by tracker.middleware.RequestLogMiddleware.
TRACKER_LOG_FORMAT = os.environ.get("TRACKER_LOG_FORMAT", "text")
if TRACKER_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"TRACKER_LOG_FORMAT must be text or json: {TRACKER_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"request_id": {"()": "tracker.middleware.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if TRACKER_LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # httpx logs every request at INFO: too loud for a watcher making thousands.
    "loggers": {
        # Django's own lines go through the same handler (its default has another format).
        "django": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
# Celery's worker keeps these handlers (JSON too) instead of installing its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Behind HTTPS (TRACKER_HTTPS=1): redirect plain HTTP, send HSTS, keep cookies to HTTPS. TLS
# ends at the proxy in front of gunicorn, which must set X-Forwarded-Proto (and drop a client's).
TRACKER_HTTPS = env_bool("TRACKER_HTTPS", default=False)
if TRACKER_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers and the container's own check ask over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = int(os.environ.get("TRACKER_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Request limits, set deliberately: no form or API body Tracker expects comes near them.
# Bodies over 2 MB are refused (a 413 in JSON from the API, a 400 page elsewhere); uploaded
# files are not counted here, and the document upload refuses files over 20 MB itself
# (tracker.reading.MAX_DOCUMENT_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Uploads larger than this are spooled to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Enough for an admin action on a long list of selected rows.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# Digests: links in mail are absolute, on this base URL.
TRACKER_BASE_URL = os.environ.get("TRACKER_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Send a digest even when nothing happened in its period (default: skip it).
TRACKER_DIGEST_SEND_EMPTY = env_bool("TRACKER_DIGEST_SEND_EMPTY", default=False)
