"""Test-wide guards: no network, offline hubs, a private cache folder."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SPOKENSTYLE_PROGRESS", "0")

_connect = socket.socket.connect


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_local(address):
        raise RuntimeError(f"a test tried to reach the network ({address!r}); tests must run offline")
    return _connect(self, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Every test: sockets may only reach loopback; the package's cache is a temp folder."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setenv("SPOKENSTYLE_CACHE", str(tmp_path / "cache"))
    yield
