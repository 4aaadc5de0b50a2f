# Ticketry: `docker build -t ticketry .` then
# `docker run -p 8000:8000 -v ticketry-data:/data --stop-timeout 40 ticketry`.
# Without TICKETRY_DATABASE_URL the embedded PostgreSQL keeps its data in the /data volume.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKETRY_DATA_DIR=/data

# tini as PID 1 forwards SIGTERM to ticketry and reaps the embedded PostgreSQL's processes.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ticketry \
    && useradd --system --uid 10001 --gid ticketry --create-home --home-dir /home/ticketry \
        --shell /usr/sbin/nologin ticketry \
    && mkdir /data \
    && chown ticketry:ticketry /data

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

USER ticketry
WORKDIR /home/ticketry
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TICKETRY_PORT', '8000'), timeout=4)"

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["ticketry", "serve", "--host", "0.0.0.0"]
