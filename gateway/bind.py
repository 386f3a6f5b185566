"""Bind modes as the legacy resolves them (``dist/net-*.mjs``): loopback / lan / tailnet / auto / custom.

Owns ``resolve_bind_host`` (mode -> one host), ``resolve_listen_hosts`` (127.0.0.1 also listens on ::1 when it
can; a specific IPv4 also needs 127.0.0.1), ``default_bind_mode`` (``auto`` inside a container, else
``loopback``; always ``loopback`` with Tailscale serve/funnel), the tailnet address lookup (an interface address in
100.64.0.0/10), and ``bind_refusal`` — the legacy's refusal to listen beyond loopback without a shared secret:
``Refusing to bind gateway to <bind> without auth.`` plus its hint, exit 78. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import socket
import struct

__all__ = [
    "bind_refusal",
    "default_bind_mode",
    "is_container_environment",
    "is_loopback_host",
    "pick_tailnet_ipv4",
    "resolve_bind_host",
    "resolve_listen_hosts",
]

BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
_TAILNET = ipaddress.ip_network("100.64.0.0/10")
_CGROUP = re.compile(r"/docker/|cri-containerd-[0-9a-f]|containerd/[0-9a-f]{64}|/kubepods[/.]|\blxc\b")


def is_container_environment(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    if env.get("FLY_MACHINE_ID", "").strip() and env.get("FLY_APP_NAME", "").strip():
        return True
    if any(os.path.exists(p) for p in ("/.dockerenv", "/run/.containerenv", "/var/run/.containerenv")):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8") as fh:
            return bool(_CGROUP.search(fh.read()))
    except OSError:
        return False


def default_bind_mode(tailscale_mode: str | None) -> str:
    if tailscale_mode and tailscale_mode != "off":
        return "loopback"
    return "auto" if is_container_environment() else "loopback"


def can_bind(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def _interface_ipv4(name: str) -> str | None:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
        return socket.inet_ntoa(packed[20:24])
    return None


def pick_tailnet_ipv4() -> str | None:
    """The first interface IPv4 address inside Tailscale's 100.64.0.0/10, if any."""
    for _, name in socket.if_nameindex():
        addr = _interface_ipv4(name)
        if addr and ipaddress.ip_address(addr) in _TAILNET:
            return addr
    return None


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address) and host.count(".") == 3
    except ValueError:
        return False


def resolve_bind_host(bind: str | None, custom_host: str | None = None) -> str:
    mode = bind or "loopback"
    if mode == "loopback":
        return "127.0.0.1"
    if mode == "tailnet":
        ip = pick_tailnet_ipv4()
        if ip and can_bind(ip):
            return ip
        return "127.0.0.1" if can_bind("127.0.0.1") else "0.0.0.0"
    if mode == "lan":
        return "0.0.0.0"
    if mode == "custom":
        host = (custom_host or "").strip()
        if host and _is_ipv4(host) and can_bind(host):
            return host
        return "0.0.0.0"
    if mode == "auto":
        if is_container_environment():
            return "0.0.0.0"
        return "127.0.0.1" if can_bind("127.0.0.1") else "0.0.0.0"
    return "0.0.0.0"


def resolve_listen_hosts(bind_host: str) -> list[str]:
    required = [bind_host] if not _is_ipv4(bind_host) or bind_host in ("0.0.0.0", "127.0.0.1") else [bind_host, "127.0.0.1"]
    if bind_host != "127.0.0.1":
        return required
    return [bind_host, "::1"] if can_bind("::1") else [bind_host]


def is_loopback_host(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def bind_refusal(bind: str, bind_host: str, auth_mode: str, has_shared_secret: bool) -> str | None:
    """The legacy's startup refusal text (exit 78), or ``None`` when the bind is allowed."""
    if is_loopback_host(bind_host) or has_shared_secret or auth_mode == "trusted-proxy":
        return None
    lines = [f"Refusing to bind gateway to {bind} without auth."]
    if is_container_environment():
        lines += ["Container environment detected — the gateway defaults to bind=auto (0.0.0.0) for port-forwarding compatibility.",
                  "Set OPENCLAW_GATEWAY_TOKEN or OPENCLAW_GATEWAY_PASSWORD, or pass --token/--password to start with auth."]
    else:
        lines.append("Set gateway.auth.token/password (or OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD) or pass --token/--password.")
    return "\n".join(lines)
