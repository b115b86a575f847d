"""The address rules: which URLs the hub will POST to, how their hosts are normalised, which addresses it refuses."""

from __future__ import annotations

import ipaddress

import pytest

from connectors.webhooks.addresses import AddressPolicy, blocked, normal_host
from connectors.webhooks.notifications import Refused

RULES = AddressPolicy()


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://hooks.example.com/mmhub", "https://hooks.example.com/mmhub"),
        ("https://HOOKS.Example.com./a%2Fb?x=a%20b#frag", "https://hooks.example.com/a%2Fb?x=a%20b"),
        ("https://Bücher.example:8443/h", "https://xn--bcher-kva.example:8443/h"),
        ("https://8.8.8.8/h", "https://8.8.8.8/h"),
        ("https://[2606:4700::1]:8443/h", "https://[2606:4700::1]:8443/h"),
    ],
)
def test_a_public_url_is_kept_with_its_host_normalised(url: str, canonical: str) -> None:
    assert str(RULES.target(url).url) == canonical


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.com/mmhub", "https"),
        ("ftp://example.com/hook", "https://host"),
        ("https:///nohost", "https://host"),
        ("https://example.com:port/x", "not a URL"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://exa_mple.com/hook", "not a valid host name"),
        ("https://localhost/hook", "own host"),
        ("https://api.localhost/hook", "own host"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://100.64.0.1/hook", "shared address space"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fc00::1]/hook", "private"),
        ("https://[::ffff:8.8.8.8]/hook", "IPv4-mapped"),
        ("https://[2002:a00:1::]/hook", "embeds 10.0.0.1"),
        ("https://[64:ff9b::7f00:1]/hook", "reserved"),  # NAT64
        ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "private"),  # Teredo
        ("https://1.2.3.4.5/hook", "four decimal numbers"),
        ("https://foo.0x1/hook", "four decimal numbers"),
    ],
)
def test_urls_the_hub_will_not_post_to(url: str, problem: str) -> None:
    with pytest.raises(Refused, match=problem):
        RULES.target(url)


def test_host_names_are_normalised_by_uts46() -> None:
    assert normal_host("①②⑦.0.0.1") == "127.0.0.1"
    assert normal_host("ⓛⓞⓒⓐⓛⓗⓞⓢⓣ") == "localhost"
    assert normal_host("Example.COM.") == "example.com"
    assert normal_host("::FFFF:7F00:1") == "::ffff:7f00:1"
    with pytest.raises(ValueError):
        normal_host(".")


@pytest.mark.parametrize("text", ["8.8.8.8", "2606:4700::1", "2002:808:808::1"])
def test_public_addresses_pass(text: str) -> None:
    assert blocked(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize("text", ["fec0::1", "fefe::a:1", "192.0.0.8", "192.0.0.170"])
def test_addresses_python_calls_global_that_reach_no_public_host_are_blocked(text: str) -> None:
    """The deprecated IPv6 site-local range and the IETF protocol assignments (the IPv4 dummy address, NAT64 discovery):
    Python 3.11's `is_global` passed each of them."""
    assert blocked(ipaddress.ip_address(text)) is not None


def test_the_allow_list_lets_names_addresses_and_networks_through() -> None:
    rules = AddressPolicy.of(["Receiver.Test.", "127.0.0.1", "10.20.0.0/16", "[fd00::1]"], allow_http=True)
    assert rules.hosts == frozenset({"receiver.test"})
    assert str(rules.target("http://127.0.0.1:8080/h").url) == "http://127.0.0.1:8080/h"
    assert rules.target("https://[fd00::1]/h").address == ipaddress.ip_address("fd00::1")
    assert rules.vet("receiver.test", [ipaddress.ip_address("127.0.0.5")]) is None  # the name is trusted
    assert rules.vet("other.test", [ipaddress.ip_address("10.20.3.4")]) is None
    # every address is vetted: one outside the allowed networks is enough to refuse
    problem = rules.vet("other.test", [ipaddress.ip_address("10.20.3.4"), ipaddress.ip_address("10.21.0.1")])
    assert problem is not None and "10.21.0.1" in problem
    assert rules.vet("other.test", []) == "other.test has no address"
    with pytest.raises(Refused, match="loopback"):
        rules.target("http://127.0.0.2/h")
    with pytest.raises(ValueError, match="allow-list entry"):
        AddressPolicy.of(["10.0.0.1/8"])  # host bits set: a typo, not a network
