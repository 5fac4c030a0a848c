"""Real Celery worker processes on the real Redis broker, sharing the test's PostgreSQL
database; the `start_worker` fixture in tests/conftest.py starts them and stops them after."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def skip_unless_workers_can_run():
    """Skip the test unless a worker process can share its database and reach a broker."""
    if not os.environ.get("CELERY_BROKER_URL") or not os.environ.get("DATABASE_URL", "").startswith(
        "postgres"
    ):
        pytest.skip("needs CELERY_BROKER_URL and a PostgreSQL DATABASE_URL (as .ci/run sets)")


def database_url():
    """The URL of the test database this session created, for a worker to share it."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(condition, *, timeout=30.0, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


class Worker:
    """A `celery worker` process (thread pool, or `pool="prefork"`: Celery's default) on
    `queue`, with `env` added to this process's environment and the test database's URL; it
    appends its output to `log`, so workers started one after another on a queue share one
    log. Task retries come at once unless `env` says."""

    def __init__(self, *, log, queue=None, concurrency=2, env=None, pool="threads"):
        self.log = log
        self.queue = queue or f"test-{uuid.uuid4().hex[:8]}"
        # Unique per process: two workers on one queue answer pings apart.
        self.hostname = f"{self.queue}-{uuid.uuid4().hex[:4]}@{os.uname().nodename}"
        self.concurrency = concurrency
        self.pool = pool
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "TRACKER_CHECK_RETRY_SECONDS": "0",
            **(env or {}),
        }
        self.process = None

    def start(self):
        """Start the process and wait until it answers a ping (it consumes from then on)."""
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--queues", self.queue, "--pool", self.pool, "--concurrency", str(self.concurrency),
            "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            "--hostname", self.hostname,
        ]  # fmt: skip
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=output, stderr=output
            )
        wait_until(
            lambda: celery_app.control.ping(destination=[self.hostname], timeout=0.5),
            timeout=60,
            message="the worker to answer a ping",
        )
        return self

    def kill(self):
        """End the process at once (SIGKILL), as a crash or the OOM killer would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def children(self):
        """The pids of the pool's processes (prefork), as the kernel lists them."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def stop(self):
        """Ask the process to finish (SIGTERM), killing it if it takes over 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self):
        return self.log.read_text()

    def succeeded(self):
        """How many tasks the log says succeeded (every worker writing to it)."""
        return self.output().count("succeeded in")
