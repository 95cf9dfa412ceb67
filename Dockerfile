# syntax=docker/dockerfile:1
#
# The `attribution` command (worker, replay, topics, ...) in a slim image.
#
#   docker build -t attribution .
#   docker run --rm attribution --help
#   docker compose up            # broker + topics + worker: see docker-compose.yml
#
# Settings come from the environment (src/attribution/settings.py): KAFKA_BROKER,
# ATTRIBUTION_STORE, ATTRIBUTION_DATA_DIR, ATTRIBUTION_WEB_HOST, ...

# --- build: install the package and its pinned dependencies into a virtualenv ------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel is built from (hatchling needs README.md; `schemas/` is force-included
# into the wheel as attribution/schemas, where the contract module finds it).
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY src/ src/
RUN pip install . \
    && python -c "from attribution.contract import schema_names; assert schema_names(), 'no schemas in the wheel'"

# --- runtime: the virtualenv only, run as a non-root user -------------------------------------
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    ATTRIBUTION_DATA_DIR=/data \
    ATTRIBUTION_WEB_HOST=0.0.0.0

RUN groupadd --system --gid 10001 attribution \
    && useradd --system --uid 10001 --gid attribution --home-dir /home/attribution --create-home \
       --shell /usr/sbin/nologin attribution \
    && mkdir -p /data \
    && chown attribution:attribution /data

COPY --from=build /opt/venv /opt/venv

USER attribution
WORKDIR /home/attribution

# RocksDB tables and Faust's data directory (ATTRIBUTION_DATA_DIR).
VOLUME ["/data"]
# Faust's web server (ATTRIBUTION_WEB_PORT).
EXPOSE 6066

ENTRYPOINT ["attribution"]
CMD ["worker", "-l", "info"]
