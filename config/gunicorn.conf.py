"""Gunicorn's settings for Tracker, from the environment.

    gunicorn -c config/gunicorn.conf.py config.wsgi

Requests are logged by Tracker itself (with request ids), so gunicorn's access log is off.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# WEB_CONCURRENCY: worker processes (default: 2 per core, plus one).
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so that a slow leak never grows without bound.
max_requests = 1000
max_requests_jitter = 100
# Heartbeat files in memory: a container's overlay filesystem can stall them.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = None
errorlog = "-"
# No runtime control socket (gunicorn 24+): nothing uses it, and it would write to $HOME.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Gunicorn's own lines as JSON too, when Tracker logs JSON.
if os.environ.get("TRACKER_LOG_FORMAT") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
            # Tracker logs each request itself, with its id.
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
    }
