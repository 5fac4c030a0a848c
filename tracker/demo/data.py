"""The demo's data files, which ship with the project."""

import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent


def read_demo_data():
    return json.loads((DEMO_DIR / "demo.json").read_text(encoding="utf-8"))
