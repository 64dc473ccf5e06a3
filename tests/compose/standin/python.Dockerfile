# Stand-in for python:3.11.13-slim-bookworm (PYTHON_IMAGE of docker/service.Dockerfile),
# built from Debian bookworm packages because no image registry is reachable in the test
# tier. Differences from the official image: CPython 3.11.2 from Debian in /usr/bin
# (the official one is 3.11.13 built in /usr/local), `python` from python-is-python3, no
# pip outside a venv (python3-venv gives `python -m venv` its ensurepip).
ARG DEBIAN_IMAGE=standin-debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
