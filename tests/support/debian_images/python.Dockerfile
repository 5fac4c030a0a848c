# Stands in for python:3.11-slim where no registry is reachable: Debian's Python 3.11, with
# `python` on the PATH as in the official image. pip trusts the host's CA bundle (ca.crt, put
# beside this file by tests/test_docker.py) so that builds reach the package index as the host does.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
ARG PIP_INDEX_URL=
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca.crt /usr/local/share/tracker-test/ca.crt
ENV PIP_CERT=/usr/local/share/tracker-test/ca.crt PIP_INDEX_URL=${PIP_INDEX_URL}
