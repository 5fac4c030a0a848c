"""Settings for the API benchmark: Tracker's own, plus a trivial view to measure against."""

from config.settings import *

ROOT_URLCONF = "bench.urls"
