"""The SSRF guard: every non-public address refused in every spelling; the allowlist is exact."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import Settings
from core.web_guard import (
    Allowlist,
    Blocked,
    address_refusal,
    check_destination,
    check_url,
)

NOTHING = Allowlist()
BLOCKED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


def refused(url: str, allow: Allowlist = NOTHING) -> str:
    with pytest.raises(Blocked) as caught:
        check_url(url, allow)
    return caught.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f.1/", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "resolves to 127.0.0.1, a loopback address"),
        ("http://017700000001/", "017700000001 resolves to 127.0.0.1, a loopback address"),
        ("http://127.1/", "127.1 resolves to 127.0.0.1, a loopback address"),
        ("http://127.0.0.1./", "127.0.0.1 is a loopback address"),
        ("http://localhost:8000/", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "loopback address, as IPv4 127.0.0.1 inside IPv6"),
        ("http://[::ffff:7f00:1]:8080/", "loopback address, as IPv4 127.0.0.1 inside IPv6"),
        ("http://[::127.0.0.1]/", "loopback address, as IPv4 127.0.0.1 inside IPv6"),
        ("http://[64:ff9b::10.0.0.1]/", "private address, as IPv4 10.0.0.1 inside IPv6"),
        ("http://[2002:7f00:1::]/", "loopback address, as IPv4 127.0.0.1 inside IPv6"),
        ("http://169.254.169.254/latest/meta-data/", "the cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "the cloud metadata address"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private (unique local)"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::]/", "unspecified"),
        ("http://0/", "0 resolves to 0.0.0.0, an unspecified"),
        ("http://10.1.2.3/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
        ("http://224.0.0.1/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[2001:db8::1]/", "documentation"),
        ("https://user:pw@127.0.0.1:443/", "127.0.0.1 is a loopback address"),
        ("file:///etc/passwd", "only http: and https: URLs may be opened, not file ones"),
        ("data:text/html,<h1>hi</h1>", "not data ones"),
        ("javascript:alert(1)", "not javascript ones"),
        ("ftp://example.com/", "not ftp ones"),
        ("//example.com/", "not scheme-less ones"),
        ("http:///nohost", "the URL names no host"),
        ("http://127.0.0.1:99999/", "not a valid URL"),
        ("http://no-such-host.invalid/", "cannot resolve no-such-host.invalid"),
    ],
)
def test_a_url_to_a_non_public_address_is_refused_with_its_reason(url: str, reason: str) -> None:
    assert reason in refused(url)


@pytest.mark.parametrize("url", ["http://93.184.216.34/", "https://[2606:4700::1111]:8443/x"])
def test_a_public_address_is_allowed(url: str) -> None:
    destination = check_url(url, NOTHING)
    assert destination.addresses and address_refusal(destination.addresses[0]) is None


def test_a_host_is_refused_when_any_of_its_addresses_is_not_public() -> None:
    def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]

    with pytest.raises(Blocked, match=r"evil\.test resolves to 10\.0\.0\.7, a private address"):
        check_destination("evil.test", 80, NOTHING, resolver)


def test_websocket_urls_are_checked_with_their_own_schemes() -> None:
    with pytest.raises(Blocked, match="loopback"):
        check_url("ws://127.0.0.1:9/", NOTHING, schemes=("ws", "wss"))
    with pytest.raises(Blocked, match="only ws: and wss: URLs"):
        check_url("http://93.184.216.34/", NOTHING, schemes=("ws", "wss"))


def test_an_allowlisted_address_and_port_opens_that_port_only() -> None:
    allow = Allowlist.parse("127.0.0.1:8123")
    assert check_url("http://127.0.0.1:8123/page", allow).port == 8123
    assert "loopback" in refused("http://127.0.0.1:8124/", allow)  # the canary's case
    assert "loopback" in refused("http://127.0.0.2:8123/", allow)


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("10.0.0.0/8", "http://10.20.30.40:9999/"),
        ("10.1.2.3", "http://10.1.2.3/"),
        ("[::1]:8080", "http://[::1]:8080/"),
        ("fd00::/8", "http://[fd12::1]/"),
        ("127.0.0.0/8", "http://[::ffff:127.0.0.5]/"),  # a mapped address is its IPv4 address
        ("localhost", "http://localhost:1234/"),
        ("LOCALHOST.:1234", "http://localhost:1234/"),
    ],
)
def test_allowlist_entries_cover_what_they_name(entry: str, url: str) -> None:
    assert check_url(url, Allowlist.parse(entry)).addresses


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("10.0.0.0/8", "http://192.168.0.1/"),
        ("localhost:1234", "http://localhost:1235/"),
        ("[::1]:8080", "http://[::1]:8081/"),
        ("intranet.example", "http://127.0.0.1/"),
    ],
)
def test_allowlist_entries_cover_nothing_else(entry: str, url: str) -> None:
    refused(url, Allowlist.parse(entry))


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:http", "[::1]x", "bad host", "a/b/c"])
def test_a_malformed_allowlist_is_refused_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="browse allowlist"):
        Settings(browse_allow=entry)


def test_the_allowlist_setting_is_read_from_the_environment(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("MISSION_BROWSE_ALLOW", "127.0.0.1:8123, 10.0.0.0/8 ,wiki.internal")
    allow = Settings().browse_allow
    assert allow.covers("127.0.0.1", 8123, ipaddress.ip_address("127.0.0.1"))
    assert allow.covers("x", 1, ipaddress.ip_address("10.9.9.9"))
    assert allow.covers("wiki.internal", 443, ipaddress.ip_address("192.168.0.1"))
    assert not allow.covers("x", 8124, ipaddress.ip_address("127.0.0.1"))


# --- properties ------------------------------------------------------------------------------

blocked_v4 = st.sampled_from(BLOCKED_V4).flatmap(
    lambda cidr: st.integers(
        int(ipaddress.ip_network(cidr).network_address),
        int(ipaddress.ip_network(cidr).broadcast_address),
    )
)


def spellings(value: int) -> list[str]:
    """The ways a URL can spell one IPv4 address that the C resolver (and Chromium) accept."""
    a, b, c, d = ipaddress.IPv4Address(value).packed
    return [
        str(ipaddress.IPv4Address(value)),
        str(value),  # one decimal number
        hex(value),  # one hex number
        "0" + oct(value)[2:],  # one octal number
        f"{a}.{(b << 16) | (c << 8) | d}",  # a.b-as-24-bits
        f"{a}.{b}.{(c << 8) | d}",  # a.b.c-as-16-bits
        f"{hex(a)}.{hex(b)}.{hex(c)}.{hex(d)}",
        f"0{oct(a)[2:]}.{b}.{c}.{d}",
        f"[::ffff:{ipaddress.IPv4Address(value)}]",
        f"[::ffff:{value >> 16:x}:{value & 0xFFFF:x}]",
        f"[64:ff9b::{ipaddress.IPv4Address(value)}]",
    ]


@given(blocked_v4)
def test_every_spelling_of_a_blocked_ipv4_address_is_refused(value: int) -> None:
    for host in spellings(value):
        refused(f"http://{host}:8080/")


public_v4 = st.integers(0, 2**32 - 1).filter(
    lambda v: (
        ipaddress.IPv4Address(v).is_global
        and not any(ipaddress.IPv4Address(v) in ipaddress.ip_network(n) for n in BLOCKED_V4)
    )
)


@given(public_v4)
def test_every_spelling_of_a_public_ipv4_address_is_allowed(value: int) -> None:
    for host in spellings(value):
        destination = check_url(f"http://{host}/", NOTHING)
        if not host.startswith("["):  # numeric forms are normalised to the address they mean
            assert destination.addresses == (ipaddress.IPv4Address(value),)


@given(st.integers(0, 2**128 - 1))
def test_an_ipv6_address_is_allowed_only_when_it_is_global(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    if address_refusal(address) is None:
        assert address.is_global
        inner = address.ipv4_mapped or address.sixtofour
        assert inner is None or address_refusal(inner) is None
