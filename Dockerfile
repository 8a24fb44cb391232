# syntax=docker/dockerfile:1
# LogLens: one process that ingests, stores and searches logs.
#   docker build -t loglens .
#   docker run -d -p 8080:8080 -v loglens-data:/data loglens
#   docker run --rm -v loglens-data:/data loglens loglens keys create --scope admin --name ops
# Auth is on (the server binds 0.0.0.0): create keys as above and send `Authorization: Bearer KEY`.

# ---- build: a wheel of LogLens and of every dependency, with the compilers kept out of the image
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY loglens ./loglens
RUN pip wheel --wheel-dir /wheels .

# ---- runtime
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    LOGLENS_DATA=/data LOGLENS_HOST=0.0.0.0 LOGLENS_PORT=8080 LOGLENS_AUTH=on
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels loglens \
 && groupadd --system --gid 10001 loglens \
 && useradd --system --uid 10001 --gid loglens --home-dir /data --shell /usr/sbin/nologin loglens \
 && mkdir -p /data /backups /slots/blue /slots/green \
 && chown loglens:loglens /data /backups /slots/blue /slots/green
USER loglens
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LOGLENS_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["loglens", "serve", "--host", "0.0.0.0", "--port", "8080", "--auth", "on"]
