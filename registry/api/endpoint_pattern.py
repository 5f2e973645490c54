"""The OpenAPI ``pattern`` of a service endpoint: exactly what ``validate_endpoint`` accepts on
the allowed hosts, in the ECMA regex dialect (every construct here also means the same in
Python's ``re``, which the tests use; the length limit is the field's ``maxLength``).

Built from the validator's own rules (:mod:`registry.validators`): host names of labels with
``_`` and ``-``, IPv4 addresses as four decimal numbers, IPv6 addresses in every spelling
Python's ``ipaddress`` reads, without the forbidden (link-local, metadata) ones, and paths of
RFC 3986 characters and %XX escapes.
"""

import ipaddress

from registry import validators

_PORT = (
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
_PATH = rf"(/([{validators.PATH_CHARS}]|%[0-9A-Fa-f]{{2}})*)*"
# The end of a host: a port, the path or the end of the URL. Not "$": in Python's dialect it
# also matches before a final newline.
_END = "(?![^:/])"
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_METADATA_NAMES = "|".join(sorted(name.replace(".", r"\.") for name in validators.METADATA_HOSTS))
# Any name: at most 253 characters, not a metadata host nor one of its subdomains.
_NAME_LIMITS = rf"(?!([a-z0-9_.-]*\.)?({_METADATA_NAMES}){_END})(?![a-z0-9_.-]{{254}})"
# A last label that is a number would make the name an IPv4 address (validators'
# _NUMERIC_LABEL_RE).
_LAST_LABEL = rf"(?!(0x[0-9a-f]*|[0-9]+){_END}){_LABEL}"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"

ANY = None  # a group of an IPv6 template that may have any value
_MAPPED = [0, 0, 0, 0, 0, 0xFFFF]  # ::ffff:0:0/96, IPv4-mapped
_NAT64 = [0x64, 0xFF9B, 0, 0, 0, 0]  # 64:ff9b::/96
_IPV4_LINK_LOCAL_HIGH = 0xA9FE  # 169.254.0.0/16


def _literal(text: str) -> str:
    """A host name or IPv4 address as a regex (only "." is special in them)."""
    return text.replace(".", r"\.")


def _group(value: int | None) -> str:
    """One 16-bit group as it may be written: up to four hex digits, of either case."""
    if value is None:
        return "[0-9A-Fa-f]{1,4}"
    if value == 0:
        return "0{1,4}"
    digits = f"{value:x}"
    either_case = "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in digits)
    return f"0{{0,{4 - len(digits)}}}{either_case}" if len(digits) < 4 else either_case


def _dotted(high: int | None, low: int | None) -> str:
    """The last two groups written as an IPv4 address."""
    if high is None:
        return _IPV4
    first = rf"{high >> 8}\.{high & 0xFF}"
    if low is None:
        return rf"{first}\.{_OCTET}\.{_OCTET}"
    return rf"{first}\.{low >> 8}\.{low & 0xFF}"


def ipv6_spellings(groups: list[int | None]) -> str:
    """Every way of writing the eight ``groups`` (``ANY``: any value) that ``ipaddress``
    reads: leading zeros, either case, ``::`` for any run of zero groups, and the last two
    groups as an IPv4 address."""
    spellings = []
    for explicit, tail in ((8, ""), (6, ":" + _dotted(groups[6], groups[7]))):
        head = groups[:explicit]
        spellings.append(":".join(map(_group, head)) + tail)
        for start in range(explicit):
            for end in range(start + 1, explicit + 1):
                if head[end - 1] not in (0, ANY):
                    break
                left = ":".join(map(_group, head[:start]))
                right = (":".join(map(_group, head[end:])) + tail).removeprefix(":")
                spellings.append(f"{left}::{right}")
    return f"({'|'.join(spellings)})"


def _groups(address: ipaddress.IPv6Address) -> list[int]:
    return [(int(address) >> (16 * (7 - i))) & 0xFFFF for i in range(8)]


def _embedding(prefix: list[int], address: ipaddress.IPv4Address) -> list[int]:
    return [*prefix, int(address) >> 16, int(address) & 0xFFFF]


def _forbidden_ipv6() -> str:
    """What follows "[" in a forbidden IPv6 endpoint: link-local (fe80::/10, its first group
    can only be written one way), the metadata addresses, and IPv4 link-local or metadata
    addresses IPv4-mapped or behind NAT64 (validators._refuse_forbidden_host)."""
    v4 = [a for a in validators.METADATA_ADDRESSES if a.version == 4]
    templates = [_groups(a) for a in validators.METADATA_ADDRESSES if a.version == 6]
    for prefix in (_MAPPED, _NAT64):
        templates.append([*prefix, _IPV4_LINK_LOCAL_HIGH, ANY])
        templates += [_embedding(prefix, a) for a in v4]
    spellings = "|".join(ipv6_spellings(template) for template in templates)
    return rf"[fF][eE][89abAB][0-9a-fA-F]:|({spellings})\]"


def _any_host() -> str:
    """ "*": any name, IPv4 or IPv6 address that is not forbidden."""
    v4 = [_literal(str(a)) + _END for a in validators.METADATA_ADDRESSES if a.version == 4]
    forbidden_v4 = "|".join([r"169\.254\.", *v4])
    return (
        rf"{_NAME_LIMITS}({_LABEL}\.)*{_LAST_LABEL}"
        rf"|(?!{forbidden_v4}){_IPV4}"
        rf"|\[(?!{_forbidden_ipv6()}){ipv6_spellings([ANY] * 8)}\]"
    )


def _address(address) -> str:
    """Every spelling of one address; an IPv4 address is also reached IPv4-mapped."""
    if address.version == 4:
        return rf"{_literal(str(address))}|\[{ipv6_spellings(_embedding(_MAPPED, address))}\]"
    return rf"\[{ipv6_spellings(_groups(address))}\]"


def _entry(kind: str, value) -> str | None:
    """The hosts one allow-list entry lets through; None when the validator would refuse
    every endpoint on it (a forbidden or malformed host)."""
    if kind == "any":
        return _any_host()
    if kind == "suffix":
        if not validators.is_host_name(value[1:]):
            return None
        return rf"{_NAME_LIMITS}({_LABEL}\.)+{_literal(value[1:])}"
    if kind == "address":
        return None if validators.is_forbidden_host(str(value), value) else _address(value)
    if not validators.is_host_name(value) or validators.is_forbidden_host(value, None):
        return None
    return _literal(value)


def endpoint_pattern(allowed_hosts) -> str:
    """The regex of the endpoints ``validate_endpoint`` accepts when ``allowed_hosts`` is
    MOE_ALLOWED_ENDPOINT_HOSTS."""
    hosts = [_entry(kind, value) for kind, value in validators.allow_list(allowed_hosts)]
    alternatives = "|".join(f"({host})" for host in hosts if host is not None) or "(?!)"
    return rf"^https?://({alternatives}){_END}{_PORT}{_PATH}$"
