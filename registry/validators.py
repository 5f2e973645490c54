"""Validators shared by the models, the admin forms and the registration API.

The router forwards client requests to a service's endpoint, so an endpoint is a place this
server will connect to on a client's behalf. :func:`validate_endpoint` keeps it to http(s)
hosts an operator allowed and always refuses link-local and cloud-metadata addresses.

No DNS lookups happen here, on purpose: a name's answer can change between validation and the
connection (DNS rebinding), a lookup would make registration slow and dependent on the
resolver, and tests would depend on the network. The check is on the URL as written; a
guard on the address actually connected to belongs in the code that forwards requests.
"""

import ipaddress
import json
import math
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from registry import constants

ALLOWED_SCHEMES = ("http", "https")

# Always refused, whatever the allow-list says ("*" included).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
# NAT64 (RFC 6052) embeds an IPv4 address in the last 32 bits; such a gateway would reach it.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

_SERVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CAPABILITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG URL rule: a host whose last label is a number is parsed as an IPv4 address, so
# "2852039166" or "0xa9.0xfe.0xa9.0xfe" reach 169.254.169.254 in most HTTP clients.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_UNSAFE_CHARS_RE = re.compile(r"[\x00-\x20\x7f\\]")


def validate_service_id(value: str) -> None:
    """A slug (letters, digits, "-", "_"), starting with a letter or digit, at most 64 long."""
    if not isinstance(value, str) or not _SERVICE_ID_RE.match(value):
        raise ValidationError(
            "Enter a slug: letters, digits, hyphens or underscores, starting with a letter "
            "or digit.",
            code="invalid_service_id",
        )
    if len(value) > constants.SERVICE_ID_MAX_LENGTH:
        raise ValidationError(
            f"At most {constants.SERVICE_ID_MAX_LENGTH} characters.", code="max_length"
        )
    if value.lower() in constants.RESERVED_SERVICE_IDS:
        raise ValidationError(f"{value!r} is reserved.", code="reserved_service_id")


def validate_capability_name(value: str) -> None:
    """A slug, at most 64 long (capability names are matched exactly by the router)."""
    if not isinstance(value, str) or not _CAPABILITY_RE.match(value):
        raise ValidationError(
            "Enter a slug: letters, digits, hyphens or underscores, starting with a letter "
            "or digit.",
            code="invalid_capability",
        )
    if len(value) > constants.CAPABILITY_NAME_MAX_LENGTH:
        raise ValidationError(
            f"At most {constants.CAPABILITY_NAME_MAX_LENGTH} characters.", code="max_length"
        )


def validate_weight(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("Enter a finite number.", code="invalid_weight")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Enter a finite number.", code="invalid_weight")
    if not 0 < value <= constants.MAX_WEIGHT:
        raise ValidationError(
            f"Weight must be greater than 0 and at most {constants.MAX_WEIGHT:g}.",
            code="invalid_weight",
        )


def validate_health_path(value: str) -> None:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        raise ValidationError(
            'The health path must be a path starting with "/" (e.g. "/health").',
            code="invalid_health_path",
        )
    if _UNSAFE_CHARS_RE.search(value) or "#" in value:
        raise ValidationError(
            "The health path must not contain spaces, control characters, '\\' or '#'.",
            code="invalid_health_path",
        )


def validate_metadata(value) -> None:
    """A JSON object, at most METADATA_MAX_BYTES once encoded and METADATA_MAX_DEPTH deep."""
    if not isinstance(value, dict):
        raise ValidationError("Metadata must be a JSON object.", code="invalid_metadata")
    if _depth(value) > constants.METADATA_MAX_DEPTH:
        raise ValidationError(
            f"Metadata may be nested at most {constants.METADATA_MAX_DEPTH} levels deep.",
            code="metadata_too_deep",
        )
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        raise ValidationError(
            "Metadata must contain only JSON values.", code="invalid_metadata"
        ) from None
    if size > constants.METADATA_MAX_BYTES:
        raise ValidationError(
            f"Metadata is {size} bytes encoded; the limit is {constants.METADATA_MAX_BYTES}.",
            code="metadata_too_large",
        )


def _depth(value, level: int = 1) -> int:
    # Stops descending past the limit so a hostile value costs no more than the limit.
    if level > constants.METADATA_MAX_DEPTH:
        return level
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return level - 1
    return max((_depth(child, level + 1) for child in children), default=level)


def validate_endpoint(url: str) -> None:
    """Refuse an endpoint the router must not forward to; see the module docstring."""
    if not isinstance(url, str) or not url:
        raise ValidationError("Enter a URL.", code="invalid_endpoint")
    if len(url) > constants.ENDPOINT_MAX_LENGTH:
        raise ValidationError(
            f"At most {constants.ENDPOINT_MAX_LENGTH} characters.", code="max_length"
        )
    if _UNSAFE_CHARS_RE.search(url):
        raise ValidationError(
            "The URL must not contain spaces, control characters or '\\'.",
            code="invalid_endpoint",
        )
    # The router appends paths (and the health path) to the endpoint and sends the client's own
    # query, so a query or fragment here would be misplaced or dropped. Even an empty "?"/"#".
    if "?" in url or "#" in url:
        raise ValidationError(
            "The endpoint must not have a query string ('?') or a fragment ('#').",
            code="query_or_fragment",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(
            "Enter a valid URL with a port between 1 and 65535.", code="invalid_endpoint"
        ) from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValidationError("Only http and https endpoints are allowed.", code="bad_scheme")
    if "@" in parts.netloc:
        raise ValidationError(
            "Credentials (user:password@) are not allowed in the endpoint.", code="userinfo"
        )
    if port == 0:
        raise ValidationError("The port must be between 1 and 65535.", code="invalid_endpoint")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError("The endpoint needs a host.", code="invalid_endpoint")
    address = _parse_host(host)
    _refuse_forbidden_host(host, address)
    # "localhost." is "localhost" to DNS but not to the allow-list, the Host header or TLS
    # names; refused rather than normalised in every place that compares hosts.
    if parts.hostname != host:
        raise ValidationError("Write the host without a trailing dot.", code="invalid_endpoint")
    # urlsplit and the allow-list compare names in lower case; accepting one spelling keeps
    # stored endpoints comparable and matches the OpenAPI pattern. IPv6 hex may be upper case.
    if url.split(":", 1)[0] != parts.scheme or (
        address is None and parts.netloc != parts.netloc.lower()
    ):
        raise ValidationError(
            "Write the scheme and the host name in lower case.", code="invalid_endpoint"
        )
    if not _host_allowed(host, address):
        raise ValidationError(
            f"Host {host!r} is not in MOE_ALLOWED_ENDPOINT_HOSTS.", code="host_not_allowed"
        )


def _parse_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The host's IP address when it is an IP literal, None for a name; refuse ambiguity."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        raise ValidationError(
            "Write an IPv4 address as four decimal numbers (e.g. 10.0.0.5).",
            code="invalid_endpoint",
        )
    if len(host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise ValidationError(f"{host!r} is not a valid host name.", code="invalid_endpoint")
    return None


def _refuse_forbidden_host(host: str, address) -> None:
    if host in METADATA_HOSTS or any(host.endswith(f".{name}") for name in METADATA_HOSTS):
        raise ValidationError("Cloud metadata hosts are never allowed.", code="forbidden_host")
    if address is None:
        return
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address in NAT64_PREFIX:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.ipv4_mapped:
            address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        raise ValidationError("Cloud metadata addresses are never allowed.", code="forbidden_host")
    if address.is_link_local:
        raise ValidationError("Link-local addresses are never allowed.", code="forbidden_host")


def refuse_forbidden_address(host: str, address_text: str) -> None:
    """Raise ValidationError when ``host`` resolved to a metadata or link-local address.

    Registration does no DNS lookup (a name may not resolve yet from the router's network), so
    the forwarder calls this on the addresses a name resolves to before connecting.
    """
    _refuse_forbidden_host(host, ipaddress.ip_address(address_text.split("%", 1)[0]))


def _host_allowed(host: str, address) -> bool:
    """Match against MOE_ALLOWED_ENDPOINT_HOSTS: "*", "*.example.com" or an exact host/IP.

    "*.example.com" matches subdomains of example.com, not example.com itself. IP entries
    compare as addresses, so "::1" and "0:0::1" are the same host.
    """
    for raw in settings.MOE_ALLOWED_ENDPOINT_HOSTS:
        entry = raw.strip().lower().strip("[]").rstrip(".")
        if entry == "*":
            return True
        if entry.startswith("*."):
            if address is None and host.endswith(entry[1:]):
                return True
            continue
        if address is not None:
            try:
                if ipaddress.ip_address(entry) == address:
                    return True
            except ValueError:
                pass
            continue
        if host == entry:
            return True
    return False
