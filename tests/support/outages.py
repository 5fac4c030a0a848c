"""Helpers for outage tests: a Redis server of our own to stop and start, a free port, and
the Celery app configured for a block (pointed at a given broker, or eager)."""

import socket
import subprocess
import time
from contextlib import contextmanager

import redis

from config.celery import app as celery_app


def free_port():
    """A port nothing listens on right now (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on 127.0.0.1, with no persistence; stop() kills it outright
    and start() brings it back on the same port, empty."""

    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = workdir
        self.process = None

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db=0):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def start(self):
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def celery_settings(**values):
    """Set Celery configuration values for the duration of a block."""
    previous = {name: getattr(celery_app.conf, name) for name in values}
    celery_app.conf.update(values)
    try:
        yield
    finally:
        celery_app.conf.update(previous)


def forget_broker_connections():
    # The app keeps a pool of producers for the broker it first used: drop it so the next
    # publish connects to the broker configured now.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def celery_broker(url):
    """Publish to the broker at `url` (really: not eagerly) for the duration of a block."""
    # broker_write_url: Celery prefers a CELERY_BROKER_URL environment variable to broker_url.
    with celery_settings(broker_write_url=url, task_always_eager=False):
        forget_broker_connections()
        try:
            yield
        finally:
            forget_broker_connections()
    forget_broker_connections()


def queued_tasks(server, queue="celery"):
    """The names and arguments of the task messages waiting in `queue`, oldest first."""
    import json

    messages = [json.loads(raw) for raw in reversed(server.client().lrange(queue, 0, -1))]
    return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]
