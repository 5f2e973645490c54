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
# Host name labels: "_" too (Docker and Compose service names), no "-" at either end.
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG URL rule: a host whose last label is a number is parsed as an IPv4 address, so
# "2852039166" or "0xa9.0xfe.0xa9.0xfe" reach 169.254.169.254 in most HTTP clients.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_UNSAFE_CHARS_RE = re.compile(r"[\x00-\x20\x7f\\]")
# The authority once userinfo is refused: a host (an IPv6 address in brackets) and a port.
_NETLOC_RE = re.compile(r"(\[[^\[\]]*\]|[^\[\]:]*)(?::([0-9]*))?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
# RFC 3986 path characters: unreserved, sub-delims, ":", "@", "/", and %XX escapes. Anything
# else is spelled differently by different clients (httpx escapes "{" but sends "|" and "%zz"
# as they are), so the service would see one URL from the proxy and another from the probe.
PATH_CHARS = "A-Za-z0-9._~!$&'()*+,;=:@/-"
_PATH_RE = re.compile(rf"(?:[{PATH_CHARS}]|%[0-9A-Fa-f]{{2}})*")


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


# The smallest weight a service may have. Weights are relative, so this still gives one service
# a millionth of another's share; below it a weight means "no traffic" without saying so (the
# router's cost divides by the weight and floors it at 1e-9, and 5e-324 is a denormal), and
# no traffic is what status "draining" or "disabled" says. Belongs in registry/constants.py
# beside MAX_WEIGHT (not this change's file).
MIN_WEIGHT = 1e-6


def validate_weight(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("Enter a finite number.", code="invalid_weight")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Enter a finite number.", code="invalid_weight")
    if not MIN_WEIGHT <= value <= constants.MAX_WEIGHT:
        raise ValidationError(
            f"Weight must be between {MIN_WEIGHT:g} and {constants.MAX_WEIGHT:g} (to send a "
            'service no traffic, set its status to "draining" or "disabled").',
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
    """Refuse an endpoint the router must not forward to; see the module docstring.

    Valid is what an HTTP client can call as written, in one spelling where spellings would
    compare differently: a lower-case scheme and host name, no trailing dot, a port without
    leading zeros, a path of RFC 3986 characters and %XX escapes. An IPv6 address may be
    written any way Python's ``ipaddress`` reads it (it is compared as an address), but with
    no zone (``%25eth0``): HTTP clients cannot connect to one.
    """
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
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
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
    authority = _NETLOC_RE.fullmatch(parts.netloc)
    if authority is None:
        raise ValidationError(
            "Enter a host, then optionally ':' and a port.", code="invalid_endpoint"
        )
    port = authority[2]
    if port is not None and not (_PORT_RE.fullmatch(port) and int(port) <= 65535):
        raise ValidationError(
            "The port must be between 1 and 65535, written without leading zeros.",
            code="invalid_endpoint",
        )
    host, address = _host_of(parts, authority[1])
    _refuse_forbidden_host(host, address)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValidationError(
            "An IPv6 zone (%25...) is not allowed: HTTP clients cannot connect to one.",
            code="invalid_endpoint",
        )
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
    if not _PATH_RE.fullmatch(parts.path):
        raise ValidationError(
            "The path may hold letters, digits, -._~!$&'()*+,;=:@/ and %XX escapes only: "
            "percent-encode anything else (é as %C3%A9, | as %7C, % as %25).",
            code="invalid_endpoint",
        )
    if not _host_allowed(host, address):
        raise ValidationError(
            f"Host {host!r} is not in MOE_ALLOWED_ENDPOINT_HOSTS.", code="host_not_allowed"
        )


def _host_of(parts, written: str):
    """``(host, IP address or None)`` from the host as ``written`` in the URL: an IPv6 address
    in brackets, else an IPv4 address or a host name."""
    if written.startswith("["):
        try:
            return parts.hostname, ipaddress.IPv6Address(written[1:-1])
        except ValueError:
            raise ValidationError(
                "Write an IPv6 address in brackets (e.g. [2001:db8::1]).",
                code="invalid_endpoint",
            ) from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError("The endpoint needs a host.", code="invalid_endpoint")
    return host, _parse_host(host)


def _parse_host(host: str) -> ipaddress.IPv4Address | None:
    """The host's IPv4 address when it is one (four decimal numbers), None for a name; refuse
    ambiguity and what is neither."""
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL_RE.match(host.split(".")[-1]):
        raise ValidationError(
            "Write an IPv4 address as four decimal numbers (e.g. 10.0.0.5).",
            code="invalid_endpoint",
        )
    if not is_host_name(host):
        raise ValidationError(f"{host!r} is not a valid host name.", code="invalid_endpoint")
    return None


def is_host_name(host: str) -> bool:
    """A lower-case DNS name whose last label is not a number (it would read as IPv4)."""
    labels = host.split(".")
    return (
        len(host) <= 253
        and all(_HOST_LABEL_RE.match(label) for label in labels)
        and not _NUMERIC_LABEL_RE.match(labels[-1])
    )


def is_forbidden_host(host: str, address) -> bool:
    """Whether an endpoint on ``host`` (an IP ``address`` or None) is never allowed."""
    try:
        _refuse_forbidden_host(host, address)
    except ValidationError:
        return True
    return False


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


def as_ipv4(address):
    """An IPv4-mapped IPv6 address (``::ffff:10.0.0.5``) as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def allow_list(entries) -> list[tuple[str, object]]:
    """MOE_ALLOWED_ENDPOINT_HOSTS as ``(kind, value)``: ``("any", None)``, ``("suffix",
    ".example.com")``, ``("address", ip)`` or ``("name", "host")``. IP entries compare as
    addresses (IPv4-mapped ones as their IPv4 address), so "::1" and "0:0::1" are one host."""
    parsed = []
    for raw in entries:
        entry = raw.strip().lower().strip("[]").rstrip(".")
        if entry == "*":
            parsed.append(("any", None))
        elif entry.startswith("*."):
            parsed.append(("suffix", entry[1:]))
        elif entry:
            try:
                address = ipaddress.ip_address(entry)
            except ValueError:
                parsed.append(("name", entry))
                continue
            if not getattr(address, "scope_id", None):  # no endpoint has a zone
                parsed.append(("address", as_ipv4(address)))
    return parsed


def _host_allowed(host: str, address) -> bool:
    """Match against MOE_ALLOWED_ENDPOINT_HOSTS: "*", "*.example.com" or an exact host/IP.

    "*.example.com" matches subdomains of example.com, not example.com itself.
    """
    address = as_ipv4(address)
    for kind, value in allow_list(settings.MOE_ALLOWED_ENDPOINT_HOSTS):
        if kind == "any":
            return True
        if address is None and (
            (kind == "suffix" and host.endswith(value)) or (kind == "name" and host == value)
        ):
            return True
        if address is not None and kind == "address" and address == value:
            return True
    return False
