"""The client's address, for the login and token throttles: the proxy's forwarded header
is believed only when the request comes from a trusted proxy.

Behind a reverse proxy every request arrives from the proxy's address, so throttling by
REMOTE_ADDR would lock everyone out together. `TRUSTED_PROXIES` (env
`DJANGO_TRUSTED_PROXIES`: addresses or networks, comma-separated) names the proxies: when
REMOTE_ADDR is one of them, X-Forwarded-For is read from the right (each proxy appends the
address it saw), trusted proxies are skipped, and the first other address is the client.
A client cannot forge its way past this: what it writes into the header lands left of the
address the trusted proxy appends. From anyone else, the header is ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)


def _trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: HttpRequest) -> str | None:
    """The address the throttles count (django-axes' AXES_CLIENT_IP_CALLABLE too); None
    when the request has none (django-axes stores it in an address column)."""
    remote = request.META.get("REMOTE_ADDR") or None
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if remote is None or not networks or not _trusted(remote, networks):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a garbled header: count the proxy, never the garble
    return remote
