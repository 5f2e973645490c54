"""Register a realistic demo fleet and a demo operator login; safe to run again.

Only demo services that are missing are registered (through
:func:`registry.services.register_service`); one that exists is left exactly as it is, since
an operator may have changed it and the rebalance job moves weights. So a second run leaves
every row and the registry version as they were.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from moe_project.env import env_int, env_str
from registry.models import Service
from registry.permissions import ensure_operator_group
from registry.services import current_registry_version, register_service

DEMO_USERNAME = "operator"
DEFAULT_DEMO_PASSWORD = "moe-operator-demo"
# Where `make run` serves unless MOE_PORT says otherwise (.ci/serve).
DEFAULT_PORT = 8005


def default_base_url() -> str:
    return f"http://127.0.0.1:{env_int('MOE_PORT', DEFAULT_PORT, minimum=1)}"


def _service(service_id, service_type, port, capabilities, max_capacity, **extra) -> dict:
    return {
        "service_id": service_id,
        "service_type": service_type,
        "endpoint": f"http://127.0.0.1:{port}",
        "capabilities": capabilities,
        "max_capacity": max_capacity,
        **extra,
    }


DEMO_FLEET = [
    _service(
        "llm-general",
        "inference",
        8101,
        ["text-generation", "chat", "summarization", "analysis"],
        64,
        metadata={"model": "llama-3.1-8b-instruct", "gpu": "L4"},
    ),
    _service(
        "llm-code",
        "inference",
        8102,
        ["text-generation", "code"],
        32,
        weight=0.8,
        metadata={"model": "qwen2.5-coder-7b", "gpu": "L4"},
    ),
    _service(
        "vision-classifier",
        "inference",
        8103,
        ["image-classification", "embedding"],
        48,
        metadata={"model": "vit-b-16"},
    ),
    _service(
        "vector-store",
        "storage",
        8104,
        ["embedding-search", "storage"],
        200,
        metadata={"engine": "pgvector", "dimensions": 768},
    ),
    _service(
        "object-archive",
        "storage",
        8105,
        ["storage", "archival"],
        150,
        weight=0.5,
        health_path="/healthz",
    ),
    _service(
        "raft-consensus",
        "consensus",
        8106,
        ["consensus", "leader-election"],
        40,
        metadata={"replicas": 3},
    ),
    _service(
        "topo-anomaly",
        "analysis",
        8107,
        ["analysis", "anomaly-detection", "tda"],
        60,
        metadata={"method": "persistent-homology"},
    ),
    _service(
        "stream-analytics",
        "analysis",
        8108,
        ["analysis", "aggregation", "time-series"],
        80,
    ),
    _service(
        "spiking-patterns",
        "neuromorphic",
        8109,
        ["spiking", "pattern-recognition"],
        16,
        metadata={"chip": "loihi-2-sim"},
    ),
    _service(
        "online-learner",
        "learning",
        8110,
        ["training", "fine-tuning", "feedback"],
        8,
        weight=0.5,
        metadata={"framework": "torch"},
    ),
    _service(
        "custom-processor",
        "custom",
        8111,
        ["processing", "analysis"],
        100,
        metadata={"owner": "platform-team"},
    ),
]


class Command(BaseCommand):
    help = "Register the demo fleet and a demo operator login (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            help="Where the server runs, for the printed URLs "
            f"(default http://127.0.0.1:$MOE_PORT, port {DEFAULT_PORT} when unset).",
        )

    def handle(self, *args, base_url: str | None, **options):
        base_url = base_url or default_base_url()
        version_before = current_registry_version()
        with transaction.atomic():
            created = self._register_fleet()
            user_changed, kept = self._ensure_operator()
        version_after = current_registry_version()

        if version_after == version_before:
            self.stdout.write(f"Demo fleet already registered ({len(DEMO_FLEET)} services).")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo fleet: {created} created, {len(DEMO_FLEET) - created} already present; "
                    f"registry version {version_before} -> {version_after}."
                )
            )
        state = "created/updated" if user_changed else "unchanged"
        if kept:
            self.stdout.write(
                self.style.WARNING(
                    f"Demo operator {DEMO_USERNAME!r}: {' and '.join(kept)} (set in admin) "
                    "left as it is; set MOE_DEMO_PASSWORD to reset its password."
                )
            )
        self.stdout.write(f"Demo operator {DEMO_USERNAME!r} ({state}): staff, operators group.")
        self._print_token_help(base_url.rstrip("/"))

    def _register_fleet(self) -> int:
        """Register the demo services that are missing; return how many were created."""
        ids = [payload["service_id"] for payload in DEMO_FLEET]
        present = set(
            Service.objects.filter(service_id__in=ids).values_list("service_id", flat=True)
        )
        created_count = 0
        for payload in DEMO_FLEET:
            if payload["service_id"] in present:
                continue  # as an operator or the rebalance job left it
            try:
                _, created = register_service(payload)
            except ValidationError as exc:
                raise CommandError(
                    f"Cannot register {payload['service_id']}: {exc.message_dict}. "
                    "Is 127.0.0.1 in MOE_ALLOWED_ENDPOINT_HOSTS?"
                ) from None
            created_count += created
        return created_count

    def _ensure_operator(self) -> tuple[bool, list[str]]:
        """Create or fix the demo operator; return whether anything was written, and what an
        operator set that was left as it is.

        What an operator decided in admin stands: a re-run (every ``make run``) does not
        re-activate a deactivated demo operator, nor reset a password changed there back to
        the published default. Only an explicit ``MOE_DEMO_PASSWORD`` sets the password of an
        existing user (rotation). Lost staff status or group membership is repaired."""
        explicit = env_str("MOE_DEMO_PASSWORD")
        password = explicit or DEFAULT_DEMO_PASSWORD
        user, created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        kept: list[str] = []
        changed = []
        if created:
            user.is_active = True
            changed.append("is_active")
        elif not user.is_active:
            kept.append("deactivated")
        if not user.is_staff:
            user.is_staff = True
            changed.append("is_staff")
        # Compare first: set_password draws a new salt, which would rewrite the row every run.
        if not user.check_password(password):
            if created or explicit:
                user.set_password(password)
                changed.append("password")
            else:
                kept.append("password changed")
        if changed:
            user.save(update_fields=changed)
        group = ensure_operator_group()
        in_group = user.groups.filter(pk=group.pk).exists()
        if not in_group:
            user.groups.add(group)
        return created or bool(changed) or not in_group, kept

    def _print_token_help(self, base_url: str) -> None:
        custom = env_str("MOE_DEMO_PASSWORD")
        password = "$MOE_DEMO_PASSWORD" if custom else DEFAULT_DEMO_PASSWORD
        quote = '"' if custom else "'"
        body = f'{{"username": "{DEMO_USERNAME}", "password": "{password}"}}'
        if custom:
            body = body.replace('"', '\\"')
        self.stdout.write(
            "Get an API token:\n"
            f"  curl -s -X POST {base_url}/api/v1/auth/token/ "
            f"-H 'Content-Type: application/json' -d {quote}{body}{quote}\n"
            f"Admin: {base_url}/admin/ (user {DEMO_USERNAME!r})"
        )
