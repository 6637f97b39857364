"""Which HTTP proxy (if any) carries the connection to the relay: the
``proxy`` option, else the environment, read as curl, the CLI and the Node
SDK read it.

``wss://`` uses ``HTTPS_PROXY``, ``ws://`` uses ``HTTP_PROXY``, ``ALL_PROXY``
is the fallback for both, lowercase names win over uppercase, and
``NO_PROXY`` lists hosts reached directly (``*``, names with their
subdomains, IP addresses, CIDR blocks, each optionally with ``:port``).
websockets' own reading of the environment (``urllib.request.getproxies``)
knows no CIDR blocks and no ``ALL_PROXY`` for ``ws://``, so the SDK decides
and opens the CONNECT tunnel to an ``http://`` proxy itself (basic auth from
``user:pass@`` in the URL), then hands websockets the tunnelled socket:
websockets before 16 (all that Python 3.9 gets) refuses a proxy's
``HTTP/1.0`` answer, which tinyproxy and others send. An ``https://`` proxy
(TLS to the proxy, then TLS to the relay inside it) is left to websockets'
own ``proxy=`` support.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple, Union

from ._errors import ConfigurationError

__all__ = ["ProxyChoice", "TunnelRefused", "bypasses_proxy", "choose_proxy", "open_tunnel", "parse_proxy"]


@dataclass(frozen=True)
class ProxyChoice:
    """The proxy a client uses."""

    #: The proxy URL for websockets, credentials included (never logged).
    url: str
    #: ``scheme://host:port`` without credentials, for messages.
    display: str
    #: Where it came from: ``the proxy option``, ``HTTPS_PROXY``, ...
    source: str
    #: True when the URL carries a user name or password.
    has_credentials: bool
    #: ``http`` or ``https``.
    scheme: str = "http"
    host: str = ""
    port: int = 0
    #: The decoded credentials, when given.
    user: str = ""
    password: str = ""


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def choose_proxy(
    target: str, option: Union[None, bool, str], env: Optional[Mapping[str, str]] = None
) -> Optional[ProxyChoice]:
    """The proxy for connections to ``target`` (a ``ws://``/``wss://`` URL):
    ``option`` when it is a string, none when it is ``False``, else (``None``
    or ``True``) the environment's."""
    if option is False:
        return None
    if isinstance(option, str):
        if not option.strip():
            raise ConfigurationError(
                "proxy must be a URL such as http://proxy.example.com:3128, False for none, "
                "or left out to use HTTPS_PROXY / HTTP_PROXY"
            )
        return parse_proxy(option.strip(), "the proxy option")
    if option is not None and option is not True:
        raise ConfigurationError(
            f"proxy must be a URL string, False for none, or None to use HTTPS_PROXY / HTTP_PROXY, "
            f"not {type(option).__name__}"
        )
    environ: Mapping[str, str] = os.environ if env is None else env
    url = urllib.parse.urlsplit(target)
    secure = url.scheme == "wss"
    host = url.hostname or ""
    port = url.port or (443 if secure else 80)
    no_proxy = _read_env(environ, "NO_PROXY")
    if no_proxy is not None and bypasses_proxy(host, port, no_proxy[1]):
        return None
    found = _read_env(environ, "HTTPS_PROXY" if secure else "HTTP_PROXY") or _read_env(environ, "ALL_PROXY")
    if found is None:
        return None
    return parse_proxy(found[1].strip(), found[0])


def _read_env(env: Mapping[str, str], name: str) -> Optional[tuple[str, str]]:
    """The first non-empty of ``name`` in lowercase, then uppercase."""
    for key in (name.lower(), name):
        value = env.get(key)
        if value is not None and value.strip():
            return key, value
    return None


def parse_proxy(text: str, source: str) -> ProxyChoice:
    """Parses a proxy URL; a bare ``host:port`` means ``http://host:port``.

    Messages name ``source`` (the variable), never the value: it may hold a
    password.
    """
    with_scheme = text if _SCHEME.match(text) else f"http://{text}"
    try:
        url = urllib.parse.urlsplit(with_scheme)
        port = url.port
        host = url.hostname
    except ValueError:
        raise ConfigurationError(
            f"{source} is not a valid proxy URL; use e.g. http://user:pass@proxy.example.com:3128"
        ) from None
    scheme = url.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{source} is a {scheme}:// proxy; the SDK tunnels only through HTTP proxies (http:// or https://). "
            "Set HTTPS_PROXY to an HTTP proxy, or pass proxy=False to connect directly"
        )
    if not host:
        raise ConfigurationError(f"{source} has no host name; use e.g. http://proxy.example.com:3128")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigurationError(f"{source} has a path or query; a proxy URL is scheme://[user:pass@]host:port")
    port = port or (443 if scheme == "https" else 80)
    shown_host = f"[{host}]" if ":" in host else host
    display = f"{scheme}://{shown_host}:{port}"
    has_credentials = url.username is not None or url.password is not None
    if not has_credentials:
        return ProxyChoice(
            url=display, display=display, source=source, has_credentials=False, scheme=scheme, host=host, port=port
        )
    try:
        user = urllib.parse.unquote(url.username or "", errors="strict")
        password = urllib.parse.unquote(url.password or "", errors="strict")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{source}: the proxy credentials hold a malformed %-escape") from None
    # Rebuilt with both parts (websockets wants a password, if only empty).
    quoted = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return ProxyChoice(
        url=f"{scheme}://{quoted}@{shown_host}:{port}",
        display=display,
        source=source,
        has_credentials=True,
        scheme=scheme,
        host=host,
        port=port,
        user=user,
        password=password,
    )


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """True when ``NO_PROXY`` says to reach ``host:port`` directly. Entries,
    split on commas or spaces: ``*`` (everything), a name (``example.com``,
    ``.example.com`` or ``*.example.com``: that host and its subdomains), an
    IP address, a CIDR block (``10.0.0.0/8``), each optionally with ``:port``.
    """
    target = host.lower().strip("[]").rstrip(".")
    target_ip = _ip(target)
    for raw in re.split(r"[\s,]+", no_proxy):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: Optional[int] = None
        bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", entry)
        host_port = re.fullmatch(r"([^:]+):(\d+)", entry)
        if bracketed:
            entry = bracketed.group(1)
            entry_port = int(bracketed.group(2)) if bracketed.group(2) else None
        elif host_port:
            entry = host_port.group(1)
            entry_port = int(host_port.group(2))
        if entry_port is not None and entry_port != port:
            continue
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if target_ip is not None and target_ip.version == network.version and target_ip in network:
                return True
            continue
        entry_ip = _ip(entry)
        if entry_ip is not None:
            if target_ip is not None and entry_ip == target_ip:
                return True
            continue
        domain = re.sub(r"^\*?\.", "", entry).rstrip(".")
        if domain and (target == domain or target.endswith(f".{domain}")):
            return True
    return False


def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TunnelRefused(Exception):
    """The proxy answered the CONNECT with something other than 2xx."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}{' ' + reason if reason else ''}")
        self.status = status
        self.reason = reason


class BadTunnelAnswer(Exception):
    """The proxy's answer to the CONNECT was not HTTP, or cut short
    (``transient``: the connection closed, as when the proxy restarts)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


#: The largest answer header read from a proxy.
MAX_ANSWER = 16 * 1024


async def open_tunnel(proxy: ProxyChoice, authority: str, user_agent: str) -> socket.socket:
    """Connects to the ``http://`` proxy, asks it for a tunnel to
    ``authority`` (``host:port``) and returns the connected socket, ready for
    the relay's bytes.

    Raises ``OSError`` when the proxy cannot be reached, :class:`TunnelRefused`
    when it answers with an error, :class:`BadTunnelAnswer` when its answer is
    not HTTP.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    sock: Optional[socket.socket] = None
    error: Optional[OSError] = None
    for family, kind, proto, _, address in infos:
        candidate = socket.socket(family, kind, proto)
        candidate.setblocking(False)
        try:
            await loop.sock_connect(candidate, address)
        except OSError as exc:
            candidate.close()
            error = exc
            continue
        except BaseException:
            candidate.close()
            raise
        sock = candidate
        break
    if sock is None:
        raise error or OSError(f"no address for {proxy.host}")
    try:
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {user_agent}"]
        if proxy.has_credentials:
            token = base64.b64encode(f"{proxy.user}:{proxy.password}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {token}")
        await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
        status, reason = await _read_answer(loop, sock)
    except BaseException:
        sock.close()
        raise
    if not 200 <= status < 300:
        sock.close()
        raise TunnelRefused(status, reason)
    return sock


async def _read_answer(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Tuple[int, str]:
    """Reads the proxy's answer header (HTTP/1.0 or 1.1), and no byte more:
    the relay speaks only after the client, so nothing follows it yet."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_ANSWER:
            raise BadTunnelAnswer(f"an answer header longer than {MAX_ANSWER} bytes")
        chunk = await loop.sock_recv(sock, 1)
        if not chunk:
            raise BadTunnelAnswer("the connection closed before a complete answer" if data else "no answer", True)
        data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    match = re.fullmatch(r"HTTP/1\.[01] (\d{3})(?: (.*))?", status_line)
    if not match:
        raise BadTunnelAnswer(f"not an HTTP answer: {status_line[:80]!r}")
    return int(match.group(1)), (match.group(2) or "").strip()
