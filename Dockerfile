# moe-router: one image for every role (web, worker, beat, migrate); see docker/entrypoint.sh
# and docker-compose.yml for the scale-out setup (PostgreSQL + Redis).
#
#   docker build -t moe-router .
#   docker compose up
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=moe_project.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    MOE_VAR_DIR=/var/lib/moe-router \
    MOE_BIND=0.0.0.0 \
    MOE_PORT=8005

WORKDIR /app

# torch first, from the CPU-only index: requirements.txt's torch==2.13.0 is then satisfied by
# the CPU build (no CUDA libraries, a fraction of the size).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code belongs to root and is read-only for the service user; only MOE_VAR_DIR is writable.
RUN groupadd --system moe \
    && useradd --system --gid moe --home-dir /var/lib/moe-router --shell /usr/sbin/nologin moe \
    && mkdir -p /var/lib/moe-router \
    && chown moe:moe /var/lib/moe-router
COPY . .
# Static files (admin, dashboard) are served by whitenoise from the image. The key is a
# throwaway for this one command; set DJANGO_SECRET_KEY (or _FILE) when running.
RUN DJANGO_SECRET_KEY=collectstatic-only MOE_VAR_DIR=/tmp/moe-build \
    python manage.py collectstatic --noinput -v 0 \
    && rm -rf /tmp/moe-build

USER moe
EXPOSE 8005
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"MOE_PORT\", \"8005\")}/api/v1/ping', timeout=4)" || exit 1
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
