"""Limits on what a service registration may contain."""

SERVICE_ID_MAX_LENGTH = 64
CAPABILITY_NAME_MAX_LENGTH = 64
# One service rarely offers more than a handful; the cap keeps a register body bounded.
MAX_CAPABILITIES_PER_SERVICE = 64
ENDPOINT_MAX_LENGTH = 500
HEALTH_PATH_MAX_LENGTH = 200
MAX_CAPACITY_LIMIT = 10_000_000
# Weights are relative; the upper bound also keeps NaN and infinity out of the table
# (PostgreSQL orders NaN above every number, so "weight > 0" alone would let it in).
MAX_WEIGHT = 1_000_000.0
# Metadata is descriptive (owner, region, model name...), not a data store.
METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_DEPTH = 8

# Path segments under /api/v1/services/ that are not service ids.
RESERVED_SERVICE_IDS = frozenset({"register"})

# The permission that makes a user an operator (besides is_staff).
OPERATE_ROUTER_PERMISSION = "registry.operate_router"

# What the operators group holds, as "app_label.codename": the registry, strategy overrides,
# routing history (read-only), gate versions (view, and change for activate/rollback) and the
# Celery schedules. Data migrations keep their own frozen copies of this list.
OPERATOR_PERMISSIONS = (
    "registry.operate_router",
    "registry.add_service",
    "registry.change_service",
    "registry.delete_service",
    "registry.view_service",
    "registry.add_capability",
    "registry.change_capability",
    "registry.delete_capability",
    "registry.view_capability",
    "routing.add_strategyoverride",
    "routing.change_strategyoverride",
    "routing.delete_strategyoverride",
    "routing.view_strategyoverride",
    "routing.view_routingdecision",
    "routing.view_gatemodel",
    "routing.change_gatemodel",
    "django_celery_beat.add_periodictask",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.delete_periodictask",
    "django_celery_beat.view_periodictask",
    "django_celery_beat.add_intervalschedule",
    "django_celery_beat.change_intervalschedule",
    "django_celery_beat.delete_intervalschedule",
    "django_celery_beat.view_intervalschedule",
    "django_celery_beat.add_crontabschedule",
    "django_celery_beat.change_crontabschedule",
    "django_celery_beat.delete_crontabschedule",
    "django_celery_beat.view_crontabschedule",
)
