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

# What the operators group holds (the data migration 0002 keeps its own copy of this list).
OPERATOR_PERMISSION_CODENAMES = (
    "operate_router",
    "add_service",
    "change_service",
    "delete_service",
    "view_service",
    "add_capability",
    "change_capability",
    "delete_capability",
    "view_capability",
)
