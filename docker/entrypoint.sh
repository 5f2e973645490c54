#!/bin/sh
# The image's entrypoint: one role per container.
#
#   entrypoint.sh web       wait for the database (and Redis), migrate when MOE_MIGRATE=1
#                           (and seed the demo fleet when MOE_SEED_DEMO=1), then serve with
#                           uvicorn on MOE_BIND:MOE_PORT with MOE_WEB_WORKERS processes
#   entrypoint.sh worker    wait, then a Celery worker (MOE_CELERY_CONCURRENCY processes)
#   entrypoint.sh beat      wait, then Celery beat (exactly one per deployment)
#   entrypoint.sh migrate   wait, migrate (and seed when MOE_SEED_DEMO=1), exit
#   entrypoint.sh CMD ...   anything else runs as given (e.g. python manage.py shell)
#
# With MOE_WEB_WORKERS > 1 the web role gives the workers a fresh PROMETHEUS_MULTIPROC_DIR so
# /metrics adds up every worker's series. MOE_DB_WAIT_SECONDS (60) bounds the wait.
# MOE_PYTHON, MOE_UVICORN and MOE_CELERY name the programs (the tests point them elsewhere).
set -eu
cd "$(dirname "$0")/.."

PYTHON=${MOE_PYTHON:-python}
UVICORN=${MOE_UVICORN:-uvicorn}
CELERY=${MOE_CELERY:-celery}
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-moe_project.settings}"

wait_for_services() {
  # One Python process polls until the database (and Redis, when configured) answer.
  "$PYTHON" - <<'PY'
import os
import sys
import time

import django

django.setup()
from django.conf import settings
from django.db import connection
from django.db.utils import OperationalError

deadline = time.monotonic() + float(os.environ.get("MOE_DB_WAIT_SECONDS", "60"))


def wait(name, probe, errors):
    while True:
        try:
            probe()
            return
        except errors as exc:
            if time.monotonic() > deadline:
                sys.exit(f"entrypoint: {name} is not reachable: {exc}")
            print(f"entrypoint: waiting for {name}: {exc}", file=sys.stderr, flush=True)
            time.sleep(1)


def database():
    connection.close()
    connection.ensure_connection()


wait("the database", database, OperationalError)
connection.close()
if settings.REDIS_URL:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    wait("Redis", client.ping, redis.RedisError)
print("entrypoint: database ready", file=sys.stderr, flush=True)
PY
}

migrate() {
  "$PYTHON" manage.py migrate --noinput
  if [ "${MOE_SEED_DEMO:-0}" = 1 ]; then
    "$PYTHON" manage.py seed_demo_fleet
  fi
}

role=${1:-web}
if [ $# -gt 0 ]; then
  shift
fi
case "$role" in
  web)
    wait_for_services
    if [ "${MOE_MIGRATE:-0}" = 1 ]; then
      migrate
    fi
    workers=${MOE_WEB_WORKERS:-1}
    if [ "$workers" -gt 1 ]; then
      PROMETHEUS_MULTIPROC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moe-prometheus.XXXXXX")
      export PROMETHEUS_MULTIPROC_DIR
    fi
    exec "$UVICORN" moe_project.asgi:application --host "${MOE_BIND:-0.0.0.0}" \
      --port "${MOE_PORT:-8005}" --workers "$workers" --no-access-log --lifespan off \
      --no-proxy-headers "$@"  # X-Forwarded-For: the app's, as far as MOE_NUM_PROXIES says
    ;;
  worker)
    wait_for_services
    exec "$CELERY" -A moe_project worker --loglevel "${MOE_CELERY_LOG_LEVEL:-INFO}" \
      --concurrency "${MOE_CELERY_CONCURRENCY:-2}" "$@"
    ;;
  beat)
    wait_for_services
    exec "$CELERY" -A moe_project beat --loglevel "${MOE_CELERY_LOG_LEVEL:-INFO}" \
      --pidfile "${MOE_BEAT_PIDFILE:-/tmp/celerybeat.pid}" "$@"
    ;;
  migrate)
    wait_for_services
    migrate
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
