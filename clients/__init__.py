"""Harnesses for real IPsec clients (strongSwan, vpnc) behind one API (clients.base).

    client = make_client("vpnc", slot.host, lab.node_dir(slot.name), settings, tracker=lab)
"""
from __future__ import annotations

from pathlib import Path

from clients.base import (ClientError, ClientInfo, ClientSettings, IPsecClient, PingResult)

CLIENT_KINDS = ("strongswan", "vpnc")

__all__ = ["CLIENT_KINDS", "ClientError", "ClientInfo", "ClientSettings", "IPsecClient",
           "PingResult", "make_client"]


def make_client(kind: str, node, workdir: Path, settings: ClientSettings,
                tracker=None) -> IPsecClient:
    if kind == "strongswan":
        from clients.strongswan import StrongSwanClient
        return StrongSwanClient(node, workdir, settings, tracker)
    if kind == "vpnc":
        from clients.vpnc import VpncClient
        return VpncClient(node, workdir, settings, tracker)
    raise ValueError(f"unknown client kind {kind!r}; choose one of {', '.join(CLIENT_KINDS)}")
