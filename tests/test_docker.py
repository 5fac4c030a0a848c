"""docker/ on a real Docker engine: the image builds, the compose stack comes up healthy, a
watched page's change becomes an alert through the worker, workers scale, Redis keeps its queue
over a restart, and everything is torn down.

No image registry is reachable here, so the base images are built from Debian packages
(debootstrap, then tests/support/debian_images/*.Dockerfile) and cached by tag; the stack runs
on the host's network (docker/compose.host.yaml) on free ports of its own. Skipped where no
engine answers, unless TRACKER_REQUIRE_DOCKER=1 (.ci/run sets it after starting dockerd).
"""

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = Path(__file__).resolve().parent / "support" / "debian_images"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = f"tracker-test/debian:{DEBIAN_SUITE}"
APP_IMAGE = "tracker-test/app:latest"
APP_BUILD_STAGE_IMAGE = "tracker-test/app-build:latest"
PROJECT = "trackerdockertest"
PARKED_QUEUE = "docker-test-parked"


def engine_missing_reason():
    """Why no Docker engine can run the stack here, or "" when one can."""
    for tool in ("docker", "docker-compose"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install docker.io docker-compose debootstrap)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return "no Docker engine answers (start: dockerd --bridge=none --iptables=false)"
    return ""


@pytest.fixture(scope="module", autouse=True)
def docker_engine():
    reason = engine_missing_reason()
    if reason:
        if os.environ.get("TRACKER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"TRACKER_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(f"Docker test skipped: {reason}")


def run(*command, check=True, timeout=900, env=None, input=None):
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, input=input
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def image_exists(tag):
    return run("docker", "image", "inspect", tag, check=False).returncode == 0


def debian_mirror():
    """The Debian mirror the host's apt uses (the one this machine can reach)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return next(part for part in parts[1:] if "://" in part)
    return "http://deb.debian.org/debian"


def build_debian_image():
    """A minimal Debian root filesystem from the host's mirror, imported as DEBIAN_IMAGE."""
    if image_exists(DEBIAN_IMAGE):
        return
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is needed to build the Debian base image (apt-get install it)")
    with tempfile.TemporaryDirectory(prefix="tracker-rootfs-") as rootfs:
        run("debootstrap", "--variant=minbase", DEBIAN_SUITE, rootfs, debian_mirror())
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", DEBIAN_IMAGE], stdin=tar.stdout, capture_output=True
        )
        tar.wait()
        assert imported.returncode == 0, imported.stderr


def build_base_image(name):
    """tracker-test/NAME from tests/support/debian_images/NAME.Dockerfile, tagged with a hash
    of what goes into it, so an unchanged image is reused as it is."""
    digest = hashlib.sha256(DEBIAN_IMAGE.encode())
    for path in sorted(IMAGES_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    if name == "python":
        digest.update(HOST_CA_BUNDLE.read_bytes())
        digest.update(os.environ.get("PIP_INDEX_URL", "").encode())
    tag = f"tracker-test/{name}:{digest.hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="tracker-image-") as context:
        for path in IMAGES_DIR.iterdir():
            shutil.copy2(path, context)
        shutil.copy2(HOST_CA_BUNDLE, Path(context) / "ca.crt")
        run(
            "docker", "build", "--quiet", "--network", "host",
            "--build-arg", f"DEBIAN_IMAGE={DEBIAN_IMAGE}",
            "--build-arg", f"PIP_INDEX_URL={os.environ.get('PIP_INDEX_URL', '')}",
            "-f", f"{context}/{name}.Dockerfile", "-t", tag, context,
        )  # fmt: skip
    return tag


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WatchedPage:
    """A page on 127.0.0.1 whose text the test changes."""

    def __init__(self):
        self.text = "The ministry has not yet published its plan."
        page = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (
                    "<html><head><title>Ministry news</title></head><body><article>"
                    f"<h1>Ministry news</h1><p>{page.text}</p>"
                    "<p>Updates on the national plan appear on this page as they happen.</p>"
                    "</article></body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/news"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """docker-compose on docker/compose.yaml plus compose.host.yaml, as project PROJECT."""

    def __init__(self, env, directory):
        self.env = {**os.environ, **env}
        self.web_port = env["TRACKER_PORT"]
        self.redis_port = env["REDIS_PORT"]
        # docker-compose 1.29 refuses published ports on the host's network (an override cannot
        # remove the web service's), so it runs the merged file without them.
        merged = run(
            "docker-compose",
            "-f", str(ROOT / "docker" / "compose.yaml"),
            "-f", str(ROOT / "docker" / "compose.host.yaml"),
            "config", env=self.env,
        ).stdout  # fmt: skip
        config = yaml.safe_load(merged)
        for service in config["services"].values():
            if service.get("network_mode") == "host":
                service.pop("ports", None)
        self.file = Path(directory) / "compose.yaml"
        self.file.write_text(yaml.safe_dump(config))

    def compose(self, *args, check=True, timeout=900):
        return run(
            "docker-compose", "-p", PROJECT, "-f", str(self.file),
            *args, check=check, timeout=timeout, env=self.env,
        )  # fmt: skip

    def shell(self, code):
        """Run Python `code` in Django's shell in the web container; return its output."""
        command = ("python", "manage.py", "shell", "-v", "0", "-c", code)
        return self.compose("exec", "-T", "web", *command).stdout

    def containers(self, service):
        return self.compose("ps", "-q", service).stdout.split()

    def states(self):
        ids = self.compose("ps", "-q").stdout.split()
        if not ids:
            return {}
        inspected = json.loads(run("docker", "inspect", *ids).stdout)
        states = {}
        for container in inspected:
            state = container["State"]
            health = (state.get("Health") or {}).get("Status")
            states[container["Name"].lstrip("/")] = (state["Status"], state["ExitCode"], health)
        return states

    def wait_healthy(self, timeout=300):
        """Wait until every container is healthy, or exited 0 when it has no health check
        (migrate); fail on one that exited otherwise or turned unhealthy."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            bad = {
                name: state
                for name, state in states.items()
                if state[2] == "unhealthy" or (state[0] == "exited" and state[1] != 0)
            }
            assert not bad, f"containers failed: {bad}\n{self.logs()}"
            waiting = {
                name: state
                for name, state in states.items()
                if not (state[2] == "healthy" or (state[2] is None and state[:2] == ("exited", 0)))
            }
            if states and not waiting:
                return states
            assert time.monotonic() < deadline, f"still not healthy: {waiting}\n{self.logs()}"
            time.sleep(2)

    def logs(self):
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-6000:]

    def healthz(self):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/healthz", headers={"Host": "127.0.0.1"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except OSError:
            return None

    def worker_nodes(self):
        return sorted(
            run("docker", "exec", container, "cat", "/tmp/celery-node").stdout.strip()
            for container in self.containers("worker")
        )

    def pinged_nodes(self):
        """The worker nodes that answer a ping through the broker."""
        result = self.compose(
            "exec", "-T", "beat", "celery", "-A", "config", "inspect", "ping", "--timeout", "5",
            check=False,
        )  # fmt: skip
        return sorted(
            line.split("->", 1)[1].split(":", 1)[0].strip()
            for line in result.stdout.splitlines()
            if line.strip().startswith("->") and line.rstrip().endswith("OK")
        )


def wait_for(what, probe, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(3)


def test_compose_stack_runs_checks_scales_and_survives_a_redis_restart(tmp_path):
    timings = {}

    def phase(name, started):
        timings[name] = time.monotonic() - started
        print(f"\ndocker test: {name}: {timings[name]:.1f} s", flush=True)

    started = time.monotonic()
    build_debian_image()
    python_image = build_base_image("python")
    postgres_image = build_base_image("postgres")
    redis_image = build_base_image("redis")
    phase("base images", started)

    started = time.monotonic()
    # The build stage gets a tag of its own, so that its layers (the dependencies) stay cached
    # when untagged images are pruned.
    for target, tag in (("build", APP_BUILD_STAGE_IMAGE), (None, APP_IMAGE)):
        run(
            "docker", "build", "--quiet", "--network", "host",
            "--build-arg", f"PYTHON_IMAGE={python_image}",
            *(["--target", target] if target else []),
            "-f", str(ROOT / "docker" / "Dockerfile"), "-t", tag, str(ROOT),
        )  # fmt: skip
    phase("app image", started)

    page = WatchedPage()
    stack = Stack(
        {
            "PYTHON_IMAGE": python_image,
            "POSTGRES_IMAGE": postgres_image,
            "REDIS_IMAGE": redis_image,
            "TRACKER_IMAGE": APP_IMAGE,
            "SECRET_KEY": "docker-test-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "POSTGRES_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
            "TRACKER_PORT": str(free_port()),
            "TRACKER_FETCH_ALLOW": f"127.0.0.1:{page.port}",
            "HEALTHCHECK_INTERVAL": "5s",
            "WEB_CONCURRENCY": "2",
            "CELERY_WORKER_CONCURRENCY": "2",
            "TRACKER_LOG_FORMAT": "text",
        },
        tmp_path,
    )
    stack.compose("down", "-v", "--remove-orphans", check=False)
    try:
        started = time.monotonic()
        stack.compose("up", "-d", "--no-build")
        states = stack.wait_healthy()
        assert {name.split("_")[1] for name in states} == {
            "postgres", "redis", "migrate", "web", "worker", "beat"
        }  # fmt: skip
        assert stack.healthz() == 200
        aof = stack.compose(
            "exec", "-T", "redis", "redis-cli", "-p", stack.redis_port, "config", "get",
            "appendonly",
        ).stdout.split()  # fmt: skip
        assert aof == ["appendonly", "yes"]
        phase("stack up and healthy", started)

        started = time.monotonic()
        stack.compose("exec", "-T", "web", "python", "manage.py", "load_demo")
        assert int(stack.shell(
            "from tracker.models import Recommendation; print(Recommendation.objects.count())"
        )) > 0  # fmt: skip
        # PDF reports need Pango in the image.
        pdf = stack.compose(
            "exec", "-T", "web", "python", "-c",
            "import weasyprint; print(weasyprint.HTML(string='<p>Plan</p>').write_pdf()[:5])",
        ).stdout  # fmt: skip
        assert "%PDF-" in pdf
        phase("demo loaded", started)

        started = time.monotonic()
        source_id = int(
            stack.shell(
                "import datetime; from tracker.models import Source; "
                f"source = Source.objects.create(url={page.url!r}, "
                "check_interval=datetime.timedelta(minutes=1)); print(source.pk)"
            )
        )
        check_now = (
            "from django.utils import timezone; from tracker.models import Source; "
            "from tracker.tasks import dispatch_due_sources; "
            f"Source.objects.filter(pk={source_id}).update(next_check_at=timezone.now()); "
            "dispatch_due_sources.delay()"
        )
        counts = (
            "from tracker.models import ChangeAlert, SourceVersion; "
            f"print(SourceVersion.objects.filter(source_id={source_id}).count(), "
            f"ChangeAlert.objects.filter(source_id={source_id}).count())"
        )
        stack.shell(check_now)
        wait_for("the first version", lambda: stack.shell(counts).split() == ["1", "0"], 120)
        page.text = "The ministry published its plan today, with a budget of 40 million."
        stack.shell(check_now)
        wait_for("the change alert", lambda: stack.shell(counts).split() == ["2", "1"], 120)
        phase("watched page changed -> alert", started)

        started = time.monotonic()
        stack.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "worker=2")
        stack.wait_healthy()
        nodes = stack.worker_nodes()
        assert len(set(nodes)) == 2, nodes
        wait_for("both workers to answer", lambda: stack.pinged_nodes() == nodes, 60)
        phase("two workers", started)

        started = time.monotonic()
        stack.shell(f"from tracker.tasks import dispatch_due_sources; "
                    f"dispatch_due_sources.apply_async(queue={PARKED_QUEUE!r})")  # fmt: skip
        redis_cli = ("exec", "-T", "redis", "redis-cli", "-p", stack.redis_port)
        assert stack.compose(*redis_cli, "llen", PARKED_QUEUE).stdout.strip() == "1"
        time.sleep(1.5)  # appendfsync everysec
        # A new container on the same volume: what survives is on the volume.
        old_redis = stack.containers("redis")
        stack.compose("rm", "--stop", "-f", "redis")
        stack.compose("up", "-d", "--no-build", "--no-deps", "redis")
        assert stack.containers("redis") != old_redis
        stack.wait_healthy()
        assert stack.compose(*redis_cli, "llen", PARKED_QUEUE).stdout.strip() == "1"
        wait_for("healthz 200", lambda: stack.healthz() == 200, 60)
        wait_for("workers back", lambda: stack.pinged_nodes() == nodes, 90)
        phase("redis restarted, queue kept, stack recovered", started)
    finally:
        started = time.monotonic()
        stack.compose("down", "-v", "--remove-orphans", check=False)
        page.close()
        phase("down -v", started)
        print("docker test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    assert not stack.compose("ps", "-q").stdout.split()
    volumes = run("docker", "volume", "ls", "-q", "--filter", f"name={PROJECT}_").stdout.split()
    assert not volumes
