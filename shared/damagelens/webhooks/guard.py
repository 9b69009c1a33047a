"""SSRF guard: a webhook may only reach a public address, checked when the URL is given and again
at every attempt (the name may resolve elsewhere by then), and the connection goes to the very
address that was checked."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class WebhookRefused(ValueError):
    """The URL is not allowed (scheme, or an address that is not public); not retried."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: IPAddress


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from exc
    return [info[4][0] for info in infos]


def forbidden(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for label, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return label
    return None


def _allowlisted(host: str, address: IPAddress, allowlist: list[str]) -> bool:
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry.lower() == host.lower():
                return True
    return False


def check_url(url: str, allow_http: bool) -> tuple[str, str, int]:
    """Syntax and scheme only (no DNS): what a submit can check without waiting on the network."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookRefused("webhook_url must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_http:
        raise WebhookRefused("webhook_url must use https (plain http is not allowed on this gateway)")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_url must not carry credentials")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def resolve_target(url: str, allow_http: bool, allowlist: list[str], resolver: Resolver = system_resolver) -> Target:
    scheme, host, port = check_url(url, allow_http)
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    if not addresses:
        raise OSError(f"{host!r} has no address")
    for address in addresses:  # every address: a name must not smuggle in a private one beside a public one
        reason = forbidden(address)
        if reason and not _allowlisted(host, address, allowlist):
            raise WebhookRefused(f"{host} resolves to {address}, a {reason} address; webhooks only go to public addresses")
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])
