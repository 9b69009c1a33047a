# Stand-in for python:3.11-slim-bookworm, built from a locally bootstrapped Debian 12 base
# (scripts/container-smoke.sh) for machines that cannot pull from a registry. Debian's own
# python3.11; `python` on PATH like the official image.
ARG DEBIAN_IMAGE=localhost/damagelens-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
