"""The embedded default AAA back end: users from the configuration.

Passwords are compared in constant time (``hmac.compare_digest``) so that the answer
time tells nothing about how much of a guess was right; an unknown user costs the same
comparison against a dummy so that it cannot be told from a wrong password by timing.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field

from responder.aaa.base import AuthRequest, AuthResult, IPv4, Refusal

log = logging.getLogger(__name__)

_DUMMY_PASSWORD = b"\x00" * 32


def _ip(value: str | IPv4 | None) -> IPv4 | None:
    return None if value is None else ipaddress.IPv4Address(value)


#: the servers of a user without any (one shared tuple: user tables run to thousands)
_NO_SERVERS: tuple[None, None] = (None, None)


@dataclass(frozen=True, slots=True)
class LocalUser:
    """One configured user. Everything but the password is optional authorization."""

    name: str
    password: bytes = field(repr=False)
    address: IPv4 | None = None
    netmask: IPv4 | None = None
    pool: str | None = None
    virtual_router: str | None = None
    dns: tuple[IPv4 | None, IPv4 | None] = _NO_SERVERS
    wins: tuple[IPv4 | None, IPv4 | None] = _NO_SERVERS
    session_timeout: int | None = None
    idle_timeout: int | None = None

    @classmethod
    def from_config(cls, name: str, password: str | bytes, *, address: str | None = None,
                    netmask: str | None = None, pool: str | None = None,
                    virtual_router: str | None = None, dns: list[str] | None = None,
                    wins: list[str] | None = None, session_timeout: int | None = None,
                    idle_timeout: int | None = None) -> "LocalUser":
        """Build from plain configuration values (strings, lists of up to two servers)."""
        def pair(values: list[str] | None) -> tuple[IPv4 | None, IPv4 | None]:
            if not values:
                return _NO_SERVERS
            values = list(values)[:2] + [None, None]
            return _ip(values[0]), _ip(values[1])

        return cls(name=name, password=password.encode() if isinstance(password, str) else password,
                   address=_ip(address), netmask=_ip(netmask), pool=pool,
                   virtual_router=virtual_router, dns=pair(dns), wins=pair(wins),
                   session_timeout=session_timeout, idle_timeout=idle_timeout)


class LocalBackend:
    """AAA from a user table. Register under ``"local"`` (the default name)."""

    def __init__(self, users: list[LocalUser], name: str = "local") -> None:
        self.name = name
        self._users = {u.name: u for u in users}

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        return self.check(request)

    def check(self, request: AuthRequest) -> AuthResult:
        """The synchronous core (the coroutine only wraps it)."""
        user = self._users.get(request.username)
        expected = user.password if user else _DUMMY_PASSWORD
        password_ok = hmac.compare_digest(expected, request.password)
        if user is None:
            return AuthResult.refused("unknown user", Refusal.CREDENTIALS_REJECTED,
                                      backend=self.name)
        if not password_ok:
            return AuthResult.refused("bad password", Refusal.CREDENTIALS_REJECTED,
                                      backend=self.name)
        return AuthResult(
            granted=True, backend=self.name, framed_ip=user.address, framed_netmask=user.netmask,
            pool_name=user.pool, virtual_router=user.virtual_router, dns=user.dns, wins=user.wins,
            session_timeout=user.session_timeout, idle_timeout=user.idle_timeout)
