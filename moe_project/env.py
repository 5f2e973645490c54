"""Typed readers for settings that come from the environment.

Each helper refuses a malformed value with ``ImproperlyConfigured`` instead of guessing, and
``env_secret`` also reads ``NAME_FILE`` (a path whose contents are the value), for secrets
mounted as files.
"""

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":  # as unset, like the numeric readers
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {raw!r}")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be <= {maximum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if value != value or (minimum is not None and value < minimum):
        raise ImproperlyConfigured(f"{name} must be a number >= {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be a number <= {maximum}, got {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str = "") -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


def env_choice(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    value = os.environ.get(name, "").strip() or default
    if upper:
        value = value.upper()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_rate(name: str, default: str) -> str:
    """A rate as DRF's throttles read it: ``<requests>/<period>``, the period starting with s,
    m, h or d (``100/min``, ``5000/hour``)."""
    value = os.environ.get(name, "").strip() or default
    if not re.fullmatch(r"[1-9][0-9]*/[smhd][a-z]*", value):
        raise ImproperlyConfigured(
            f"{name} must look like '<requests>/<period>' with a period of s, min, hour or day "
            f"(e.g. '100/min'), got {value!r}"
        )
    return value


def env_mapping(name: str, default: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """``key=a|b;key2=c`` -> ``{"key": ("a", "b"), "key2": ("c",)}``; empty -> ``{}``."""
    raw = os.environ.get(name)
    if raw is None:
        return dict(default)
    out: dict[str, tuple[str, ...]] = {}
    for part in raw.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, values = part.partition("=")
        key = key.strip()
        items = tuple(v.strip() for v in values.split("|") if v.strip())
        if not sep or not key or not items:
            raise ImproperlyConfigured(
                f"{name} must look like 'type=service_type|service_type;type2=...', got {part!r}"
            )
        out[key] = items
    return out
