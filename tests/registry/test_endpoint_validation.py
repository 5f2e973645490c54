"""validate_endpoint: http(s) on allowed hosts; link-local and metadata addresses never."""

from contextlib import suppress

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from registry.validators import validate_endpoint


@pytest.fixture
def allow(settings):
    def _allow(*hosts: str) -> None:
        settings.MOE_ALLOWED_ENDPOINT_HOSTS = list(hosts)

    return _allow


def refused_code(url: str) -> str:
    with pytest.raises(ValidationError) as info:
        validate_endpoint(url)
    return info.value.code


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8006",
        "http://127.0.0.1:8101/",
        "https://localhost/api/v1",
    ],
)
def test_it_accepts_http_and_https_on_the_default_allow_list(url):
    validate_endpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8006/a?b=c",
        "http://localhost:8006?",
        "http://localhost#x",
        "http://localhost/#",
    ],
)
def test_it_refuses_a_query_or_a_fragment(url):
    assert refused_code(url) == "query_or_fragment"


@pytest.mark.parametrize(
    "url",
    ["HTTP://localhost:80", "http://LOCALHOST:80", "http://localhost.:9000", "http://127.0.0.1./"],
)
def test_it_refuses_other_spellings_of_an_allowed_host(url):
    assert refused_code(url) == "invalid_endpoint"


@pytest.mark.parametrize(
    "url",
    ["ftp://localhost/x", "file:///etc/passwd", "gopher://localhost", "localhost:8000", "//x"],
)
def test_it_refuses_schemes_other_than_http_and_https(url):
    assert refused_code(url) == "bad_scheme"


def test_it_refuses_a_host_off_the_allow_list():
    assert refused_code("http://example.com:8000") == "host_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@localhost:8000",
        "http://user@localhost:8000",
        "http://localhost:8000@evil.example",
    ],
)
def test_it_refuses_userinfo_in_the_url(url):
    assert refused_code(url) == "userinfo"


@pytest.mark.parametrize("port", ["0", "65536", "99999", "http", "-1"])
def test_it_refuses_a_port_out_of_range(port):
    assert refused_code(f"http://localhost:{port}/") == "invalid_endpoint"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fd00:ec2::254%25eth0]/",
        "http://METADATA.GOOGLE.INTERNAL./",
    ],
)
def test_it_refuses_cloud_metadata_addresses_even_when_every_host_is_allowed(allow, url):
    # given
    allow("*")
    # then
    assert refused_code(url) == "forbidden_host"


@pytest.mark.parametrize(
    "url", ["http://169.254.10.1:8080", "http://[fe80::1]:8080", "http://[fe80::1%25eth0]/"]
)
def test_it_refuses_link_local_addresses_even_when_every_host_is_allowed(allow, url):
    allow("*")
    assert refused_code(url) == "forbidden_host"


def test_it_refuses_link_local_addresses_even_when_listed_explicitly(allow):
    allow("169.254.10.1", "169.254.169.254")
    assert refused_code("http://169.254.10.1/") == "forbidden_host"
    assert refused_code("http://169.254.169.254/") == "forbidden_host"


@pytest.mark.parametrize(
    "url",
    [
        "http://2852039166/",  # 169.254.169.254 as one decimal number
        "http://0xa9fea9fe/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://169.254.43518/",
        "http://0251.0376.0251.0376/",
        "http://127.1/",
    ],
)
def test_it_refuses_ip_addresses_not_written_as_four_decimal_numbers(allow, url):
    allow("*")
    assert refused_code(url) == "invalid_endpoint"


def test_a_star_allows_any_other_host(allow):
    allow("*")
    validate_endpoint("https://api.example.org:8443/v1")
    validate_endpoint("http://10.0.0.5:9000")
    validate_endpoint("http://[2001:db8::1]:9000")


def test_a_suffix_pattern_allows_subdomains_but_not_the_domain_itself(allow):
    # given
    allow("*.svc.internal")
    # then
    validate_endpoint("http://gate.svc.internal:8000")
    validate_endpoint("http://a.b.svc.internal")
    assert refused_code("http://svc.internal") == "host_not_allowed"
    assert refused_code("http://evilsvc.internal") == "host_not_allowed"
    assert refused_code("http://svc.internal.evil.example") == "host_not_allowed"


def test_ip_entries_match_the_address_however_it_is_written(allow):
    allow("::1", "[2001:db8::5]")
    validate_endpoint("http://[0:0::1]:8000")
    validate_endpoint("http://[2001:db8:0::5]/")
    assert refused_code("http://[::2]/") == "host_not_allowed"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://",
        "http:///path",
        "http://local host/",
        "http://localhost/ path",
        " http://localhost/",
        "http://localhost\\@evil/",
        "http://[::1/",
        "http://exa$mple/",
        "http://-bad-.example/",
        "http://localhost/" + "a" * 500,
    ],
)
def test_it_refuses_malformed_urls(allow, url):
    allow("*")
    with pytest.raises(ValidationError):
        validate_endpoint(url)


@pytest.mark.parametrize("value", [None, 42, ["http://localhost"], b"http://localhost"])
def test_it_refuses_values_that_are_not_strings(value):
    with pytest.raises(ValidationError):
        validate_endpoint(value)


@given(st.text(max_size=80) | st.from_regex(r"https?://[^/]{0,40}(/.{0,20})?", fullmatch=True))
def test_any_string_is_either_accepted_or_refused_with_a_validation_error(url):
    with override_settings(MOE_ALLOWED_ENDPOINT_HOSTS=["*"]), suppress(ValidationError):
        validate_endpoint(url)
