"""The OpenAPI pattern of ``endpoint`` and ``validate_endpoint`` rule alike on every URL.

What is valid is what an HTTP client can call as written: %-escapes in the path, "_" in host
names, an IPv6 address in any spelling ``ipaddress`` reads (an IPv4-mapped one is its IPv4
address). Refused: what clients send differently or cannot call (a path character outside
RFC 3986, a malformed escape, an IPv6 zone), the one-spelling rules (lower case, no trailing
dot, a port without leading zeros), and forbidden (link-local, metadata) hosts in any spelling.
"""

import ipaddress
import json
import re
import shutil
import subprocess

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry.api.serializers import endpoint_pattern
from registry.validators import validate_endpoint

DEFAULT = ["localhost", "127.0.0.1"]
ANY = ["*"]
ALLOW_LISTS = [
    ANY,
    DEFAULT,
    ["::1", "*.svc.internal"],
    ["10.0.0.5", "::ffff:127.0.0.2", "2001:db8::1", "my_svc"],
    ["*.metadata", "169.254.1.1", "fe80::1%eth0", "metadata", "010.0.0.1"],
]

CASES = [
    # (allow-list, endpoint, valid?)
    (DEFAULT, "http://localhost:8006/caf%C3%A9/%E2%9C%93", True),
    (DEFAULT, "http://localhost:8006/a%20b/%2F/%25", True),
    (DEFAULT, "http://localhost/a/B_c-d.e~f!$&'()*+,;=:@", True),
    (DEFAULT, "http://localhost/café", False),  # percent-encode it: %C3%A9
    (DEFAULT, "http://localhost/a%zz", False),
    (DEFAULT, "http://localhost/a%2", False),
    (DEFAULT, "http://localhost/a|b", False),
    (DEFAULT, "http://localhost/a[b]", False),
    (DEFAULT, 'http://localhost/a"b', False),
    (ANY, "http://my_svc:8000/v1", True),
    (ANY, "http://_svc.internal_/", True),
    (ANY, "http://my-host:8000", True),
    (ANY, "http://1a.example/", True),
    (ANY, "http://-svc/", False),
    (ANY, "http://svc-/", False),
    (ANY, "http://a..b/", False),
    (ANY, "http://10.0.0.5:9000", True),
    (ANY, "http://010.0.0.5/", False),
    (["::1"], "http://[0:0:0:0:0:0:0:1]:8000/", True),
    (["::1"], "http://[0000::0001]/", True),
    (["::1"], "http://[::0:1]/", True),
    (["::1"], "http://[::0.0.0.1]/", True),
    (["::1"], "http://[::1%25lo]/", False),  # no client can connect to a zone
    (DEFAULT, "http://[::ffff:127.0.0.1]:8000", True),
    (DEFAULT, "http://[::FFFF:7F00:1]/", True),
    (DEFAULT, "http://[0:0:0:0:0:ffff:127.0.0.1]/", True),
    (DEFAULT, "http://[::ffff:127.0.0.2]/", False),
    (ANY, "http://[::ffff:127.0.0.1]:8000", True),
    (ANY, "http://[2001:DB8::1]:9000", True),
    (ANY, "http://[1:2:3:4:5:6:7::]/", True),
    (ANY, "http://[::]/", True),
    (ANY, "http://[v1.fe]/", False),
    (ANY, "http://[::1]x/", False),
    (ANY, "http://[127.0.0.1]/", False),
    (ANY, "http://[::ffff:169.254.169.254]/", False),
    (ANY, "http://[0:0:0:0:0:ffff:a9fe::]/", False),
    (ANY, "http://[64:ff9b::a9fe:a9fe]/", False),
    (ANY, "http://[FE80::1]/", False),
    (ANY, "http://[fd00:0ec2:0::0254]/", False),
    (ANY, "http://x.metadata/", False),
    (ANY, "http://metadata.google.internal/", False),
    (ANY, "http://metadatax/", True),
    (DEFAULT, "http://localhost:08006/", False),
    (DEFAULT, "http://localhost:/", False),
    (DEFAULT, "http://localhost:65535/", True),
    (DEFAULT, "http://localhost:65536/", False),
]


def validator_accepts(url: str, hosts: list[str]) -> bool:
    with override_settings(MOE_ALLOWED_ENDPOINT_HOSTS=hosts):
        try:
            validate_endpoint(url)
        except ValidationError:
            return False
    return True


_compiled: dict[tuple, object] = {}


def pattern_accepts(url: str, hosts: list[str]) -> bool:
    """The documented pattern, matched as ECMA does: "$" only at the very end."""
    key = tuple(hosts)
    if key not in _compiled:
        pattern = endpoint_pattern(hosts)
        assert pattern.startswith("^") and pattern.endswith("$")
        _compiled[key] = re.compile(pattern[1:-1])
    return _compiled[key].fullmatch(url) is not None


@pytest.mark.parametrize(("hosts", "url", "valid"), CASES)
def test_each_case_is_ruled_the_same_by_the_validator_and_the_schema(hosts, url, valid):
    assert validator_accepts(url, hosts) == valid, url
    assert pattern_accepts(url, hosts) == valid, url


@pytest.mark.parametrize("url", [url for _, url, valid in CASES if valid])
def test_a_valid_endpoint_is_one_httpx_sends_as_written(url):
    parsed = httpx.URL(url)
    written_path = url.split("://", 1)[1].partition("/")[2]

    assert parsed.raw_path.decode("ascii") == "/" + written_path


# --- generated URLs -------------------------------------------------------------------------


@st.composite
def ipv6_spelling(draw, address: ipaddress.IPv6Address) -> str:
    """One way of writing ``address``: leading zeros, case, where "::" goes, a dotted tail."""
    groups = [(int(address) >> (16 * (7 - i))) & 0xFFFF for i in range(8)]
    dotted = draw(st.booleans())
    explicit = 6 if dotted else 8
    parts = []
    for value in groups[:explicit]:
        digits = "0" * draw(st.integers(0, 4 - len(f"{value:x}"))) + f"{value:x}"
        parts.append(digits.upper() if draw(st.booleans()) else digits)
    tail = [str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))] if dotted else []
    runs = [
        (start, end)
        for start in range(explicit)
        for end in range(start + 1, explicit + 1)
        if not any(groups[start:end])
    ]
    run = draw(st.sampled_from([None, *runs]))
    if run is None:
        text = ":".join(parts + tail)
    else:
        text = ":".join(parts[: run[0]]) + "::" + ":".join(parts[run[1] :] + tail)
    assert ipaddress.IPv6Address(text) == address, text
    return text


INTERESTING_V6 = [
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:127.0.0.2",
    "::ffff:169.254.169.254",
    "::ffff:169.254.0.0",
    "::ffff:100.100.100.200",
    "64:ff9b::169.254.1.1",
    "64:ff9b::100.100.100.200",
    "64:ff9b::10.0.0.1",
    "fd00:ec2::254",
    "fe80::1",
    "febf:ffff::",
    "fec0::1",
    "2001:db8::1",
    "::",
    "1::",
]
addresses_v6 = st.one_of(
    st.sampled_from(INTERESTING_V6).map(ipaddress.IPv6Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    # mostly zero groups: many places for "::"
    st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xA9FE]), min_size=8, max_size=8).map(
        lambda g: ipaddress.IPv6Address(sum(v << (16 * (7 - i)) for i, v in enumerate(g)))
    ),
)
ipv6_hosts = addresses_v6.flatmap(ipv6_spelling).flatmap(
    lambda text: st.sampled_from([f"[{text}]", f"[{text}%25eth0]", text])
)
names = st.sampled_from(
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "my_svc",
        "_a",
        "a_",
        "-a",
        "a-",
        "my-host",
        "1a",
        "0x1f",
        "a.0x",
        "a.0x1g",
        "a.1",
        "metadata",
        "x.metadata",
        "metadata.google.internal",
        "a.svc.internal",
        "svc.internal",
        "a..b",
        "",
        "é.example",
        "[v1.x]",
        "[127.0.0.1]",
        "[::1]x",
        "a" * 64,
    ]
)
ipv4_hosts = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "127.0.0.2", "10.0.0.5", "010.0.0.5", "169.254.169.254", "169.254.1.1"]
        + ["100.100.100.200", "100.100.100.2", "256.1.1.1", "1.2.3", "0x7f.0.0.1", "127.0.0.1."]
    ),
    st.ip_addresses(v=4).map(str),
)
free_hosts = st.from_regex(r"[a-zA-Z0-9_.\-]{1,12}", fullmatch=True)
ports = st.sampled_from(["", "", ":", ":0", ":08006", ":8006", ":65535", ":65536", ":x"])
path_pieces = st.sampled_from(
    list("/aZ09-._~!$&'()*+,;=:@%|[]{}\"<>^`é") + ["%20", "%zz", "%C3%A9", "%2F", "%2e", "%a"]
)
paths = st.lists(path_pieces, max_size=8).map(lambda pieces: "/" + "".join(pieces)) | st.just("")
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "http", "HTTP", "ftp"]),
    st.one_of(names, ipv4_hosts, ipv6_hosts, free_hosts),
    ports,
    paths,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=urls, hosts=st.sampled_from(ALLOW_LISTS))
@example(url="http://[::ffff:169.254.169.254]/", hosts=ANY)
@example(url="http://my_svc/caf%C3%A9", hosts=ALLOW_LISTS[3])
def test_the_validator_and_the_schema_agree_on_any_url(url, hosts):
    assert validator_accepts(url, hosts) == pattern_accepts(url, hosts), url


@settings(max_examples=300, deadline=None)
@given(data=st.data(), address=addresses_v6)
def test_every_spelling_of_an_allowed_ipv6_address_is_valid_unless_it_is_forbidden(data, address):
    # given: the address listed, and one of its spellings in an endpoint
    url = f"http://[{data.draw(ipv6_spelling(address))}]:8000/v1"
    mapped = address.ipv4_mapped
    forbidden = address.is_link_local or str(address) == "fd00:ec2::254"
    embedded = mapped or (
        ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address in ipaddress.ip_network("64:ff9b::/96")
        else None
    )
    if embedded is not None:
        forbidden = forbidden or embedded.is_link_local or str(embedded) == "100.100.100.200"
    for hosts in ([str(address)], [str(mapped or address)], ANY):
        # then
        assert validator_accepts(url, hosts) == (not forbidden), (url, hosts)
        assert pattern_accepts(url, hosts) == (not forbidden), (url, hosts)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run ECMA regexes")
@pytest.mark.parametrize("hosts", ALLOW_LISTS)
def test_the_pattern_means_the_same_to_an_ecma_engine(hosts):
    """What an OpenAPI tool does with the pattern: JavaScript's RegExp, with the "u" flag."""
    urls = [url for _, url, _ in CASES]
    script = (
        "const [p, urls] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const r = new RegExp(p, 'u');"
        "console.log(JSON.stringify(urls.map((u) => r.test(u))));"
    )
    done = subprocess.run(
        ["node", "-e", script],
        input=json.dumps([endpoint_pattern(hosts), urls]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(done.stdout) == [pattern_accepts(url, hosts) for url in urls]
