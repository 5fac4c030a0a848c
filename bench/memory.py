"""Peak memory for the benchmarks: each size runs in a fresh process of its own, so one size's
peak cannot hide the other's, and the peak is taken over the measured work only (set-up
such as filling the scratch database is left out where the kernel allows it)."""

import contextlib
import json
import resource
import subprocess
import sys
from pathlib import Path


def start_peak():
    """Forget this process's peak so far (Linux: /proc/self/clear_refs); elsewhere the peak
    stays the process's whole life."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb(pid="self"):
    """The peak resident memory of process `pid` (this one by default), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid != "self":
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def children_of(pid):
    """The ids of `pid`'s child processes (Linux), else none."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def run_child(script, arguments, label):
    """Run `script --child *arguments` in a fresh process, print its lines indented and return
    the JSON object of its last line."""
    process = subprocess.run(
        [sys.executable, str(script), "--child", *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = process.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(f"  {line}", flush=True)
    if process.returncode or not lines:
        sys.stderr.write(process.stderr)
        raise SystemExit(f"the run at {label} failed")
    return json.loads(lines[-1])


def at_two_sizes(script, option, size, arguments=(), *, keys=("peak_rss_mb",)):
    """Run `script` as a child at a quarter of `size` and at `size` (its `option`), each in a
    fresh process; return the full size's figures with, for each of `keys`, the quarter size's
    figure as `<key>_at_quarter_n`, and print the peaks side by side."""
    figures = {}
    for n in (max(size // 4, 1), size):
        print(f"== {option.lstrip('-')} {n} ==", flush=True)
        figures[n] = run_child(script, [option, n, *arguments], f"{option} {n}")
    result = dict(figures[size])
    quarter = figures[max(size // 4, 1)]
    for key in keys:
        result[f"{key}_at_quarter_n"] = quarter.get(key)
        print(
            f"{key}: {quarter.get(key)} at {max(size // 4, 1)}, {result.get(key)} at {size}",
            flush=True,
        )
    return result
