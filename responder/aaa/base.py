"""The AAA interface: what the Xauth code asks, what a back end answers.

Shaped like strongSwan's ``xauth_method`` / ``attribute_provider``: a back end is a
small object with one coroutine, ``authenticate(request) -> AuthResult``; back ends
register by name in a :class:`Registry` that the daemon builds (no module-level
singleton). :class:`Authenticator` puts domain maps and the registry together: it
appends the profile's domain suffix, picks the back end (and RADIUS server group) the
domain map names, and hands the request over.

A refusal is a normal result (``granted=False`` with a ``reason`` for the log and a
:class:`Refusal` kind), not an exception: the Xauth exchange turns it into an Xauth
status FAIL either way. The kind, never the reason text, decides what follows
(:data:`REFUSAL_RULES`):

=========================  =====  =====  ===========================================
kind                       guess  final  set for
=========================  =====  =====  ===========================================
``CREDENTIALS_REJECTED``   yes    no     unknown user, wrong password, Access-Reject
``AAA_UNAVAILABLE``        no     yes    every RADIUS server dead or silent, client
                                         overloaded, the AAA timeout of the worker
``AAA_ERROR``              no     yes    an exception in a back end, a reply AAA
                                         should never send
``POLICY``                 no     no     a refusal this gateway cannot act on (an
                                         Access-Challenge: Xauth has no second round)
=========================  =====  =====  ===========================================

*guess*: the lockout counts it as a password guess. *final*: Xauth ends with STATUS=FAIL
at once instead of re-prompting (asking an unavailable AAA again cannot help).
Exceptions are kept for faults of our own (an unknown back end name in the
configuration).
"""
from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

#: RFC 2865 §5.41 NAS-Port-Type "Virtual" (5): a subscriber on a tunnel, not a port.
NAS_PORT_TYPE_VIRTUAL = 5
#: RFC 2865 §5.6 Service-Type "Framed" (2): the user gets an IP interface.
SERVICE_TYPE_FRAMED = 2

IPv4 = ipaddress.IPv4Address


class AaaError(Exception):
    """Base of the typed errors of the AAA package (our faults, not refusals)."""


class UnknownBackendError(AaaError):
    """The configuration names a back end (or server group) that was never registered."""


def strip_password_nul(password: bytes) -> bytes:
    """Remove ONE trailing NUL: some clients send the Xauth password C-string style.

    Only one: a password that really ends in NUL bytes keeps the others (it would then be
    wrong either way, but we do not silently rewrite more than the known quirk).
    """
    return password[:-1] if password.endswith(b"\x00") else password


@dataclass(frozen=True)
class NasInfo:
    """What RFC 2865 wants to know about the 'port' the user arrives on."""

    nas_ip: IPv4 | None = None
    nas_identifier: str | None = None
    #: NAS-Port: the subscriber index (unique among live subscribers)
    nas_port: int | None = None
    #: Calling-Station-Id: the peer's public IP address (RFC 2865 §5.31, as PPPoE/L2TP LNSs do)
    calling_station_id: str | None = None
    #: Called-Station-Id: the local IKE address the peer connected to
    called_station_id: str | None = None
    nas_port_type: int = NAS_PORT_TYPE_VIRTUAL
    service_type: int = SERVICE_TYPE_FRAMED


@dataclass(frozen=True)
class AuthRequest:
    """One authentication attempt. ``username`` is the name as sent to the back end
    (after domain mapping); ``password`` has had its trailing NUL quirk removed."""

    username: str
    password: bytes = field(repr=False)
    nas: NasInfo = field(default_factory=NasInfo)
    #: RADIUS server group chosen by the domain map (None: the back end's default)
    server_group: str | None = None

    @classmethod
    def from_xauth(cls, username: str | bytes, password: bytes, nas: NasInfo,
                   server_group: str | None = None) -> "AuthRequest":
        """Build from raw Xauth attributes: decode the name, strip the NUL quirk."""
        if isinstance(username, bytes):
            username = strip_password_nul(username).decode("utf-8", errors="replace")
        return cls(username=username, password=strip_password_nul(password), nas=nas,
                   server_group=server_group)


class Refusal(enum.Enum):
    """Why AAA refused, as far as the gateway must act on it (module doc)."""

    CREDENTIALS_REJECTED = "credentials-rejected"
    AAA_UNAVAILABLE = "aaa-unavailable"
    AAA_ERROR = "aaa-error"
    POLICY = "policy"


@dataclass(frozen=True)
class RefusalRule:
    #: the lockout counts it as a password guess
    guess: bool
    #: no re-prompt: Xauth STATUS=FAIL at once, the phase 1 SA goes
    final: bool


REFUSAL_RULES: dict[Refusal, RefusalRule] = {
    Refusal.CREDENTIALS_REJECTED: RefusalRule(guess=True, final=False),
    Refusal.AAA_UNAVAILABLE: RefusalRule(guess=False, final=True),
    Refusal.AAA_ERROR: RefusalRule(guess=False, final=True),
    Refusal.POLICY: RefusalRule(guess=False, final=False),
}


@dataclass(frozen=True)
class AuthResult:
    """The back end's verdict plus the authorization it carries.

    Every authorization field is optional: None means "the back end did not say", and
    the profile's default applies. ``reason`` is for logs and ``show`` output only;
    ``refusal`` (set exactly when not granted) is what the gateway acts on.
    """

    granted: bool
    reason: str = ""
    refusal: Refusal | None = None
    framed_ip: IPv4 | None = None
    framed_netmask: IPv4 | None = None
    pool_name: str | None = None
    virtual_router: str | None = None
    #: [primary, secondary]; either may be None
    dns: tuple[IPv4 | None, IPv4 | None] = (None, None)
    wins: tuple[IPv4 | None, IPv4 | None] = (None, None)
    session_timeout: int | None = None
    idle_timeout: int | None = None
    #: RFC 2865 §5.25 Class: echoed unchanged in every accounting request
    class_: bytes | None = None
    reply_message: str | None = None
    #: which back end decided (for logs and accounting's Acct-Authentic)
    backend: str = ""

    def __post_init__(self) -> None:
        if self.granted == (self.refusal is not None):
            raise ValueError("an AuthResult has a refusal kind exactly when it is not granted")

    @classmethod
    def refused(cls, reason: str, refusal: Refusal, backend: str = "",
                reply_message: str | None = None) -> "AuthResult":
        return cls(granted=False, reason=reason, refusal=refusal, backend=backend,
                   reply_message=reply_message)

    @classmethod
    def aaa_fault(cls, exc: BaseException, timeout: float) -> "AuthResult":
        """The refusal for an exception out of AAA: the worker's AAA timeout (a
        ``TimeoutError`` after ``timeout`` seconds) is unavailability, anything else an
        error."""
        if isinstance(exc, TimeoutError):
            return cls.refused(f"AAA timeout: no answer within {timeout:g}s",
                               Refusal.AAA_UNAVAILABLE)
        return cls.refused(f"AAA error: {type(exc).__name__}: {exc}", Refusal.AAA_ERROR)

    @property
    def is_guess(self) -> bool:
        """A refusal the lockout counts: the name or password was wrong."""
        return self.refusal is not None and REFUSAL_RULES[self.refusal].guess

    @property
    def is_final(self) -> bool:
        """A refusal no re-prompt can change (AAA unavailable or failing)."""
        return self.refusal is not None and REFUSAL_RULES[self.refusal].final

    def with_overrides(self, **changes) -> "AuthResult":
        return dataclasses.replace(self, **changes)


@runtime_checkable
class AaaBackend(Protocol):
    """What a back end provides. ``name`` is the key it is registered under."""

    name: str

    async def authenticate(self, request: AuthRequest) -> AuthResult: ...


class Registry:
    """Back ends by name; built and filled by the daemon at start-up."""

    def __init__(self) -> None:
        self._backends: dict[str, AaaBackend] = {}

    def register(self, backend: AaaBackend, name: str | None = None) -> None:
        key = name or backend.name
        if key in self._backends:
            raise AaaError(f"AAA back end {key!r} registered twice")
        self._backends[key] = backend

    def get(self, name: str) -> AaaBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise UnknownBackendError(
                f"no AAA back end named {name!r} (registered: {sorted(self._backends)})") from None

    def names(self) -> list[str]:
        return sorted(self._backends)

    def __contains__(self, name: str) -> bool:
        return name in self._backends


@dataclass(frozen=True)
class DomainMapEntry:
    """What a domain selects: the back end (and its server group) and/or a VR."""

    domain: str
    backend: str | None = None
    server_group: str | None = None
    virtual_router: str | None = None
    #: strip "@domain" before sending the name to the back end (E Series "strip-domain")
    strip_domain: bool = False


@dataclass(frozen=True)
class MappedUser:
    username: str
    domain: str | None
    entry: DomainMapEntry | None


class DomainMaps:
    """Domain suffix -> :class:`DomainMapEntry`. The profile's suffix (e.g. ``corp``) is
    appended as ``user@corp`` unless the user already typed a domain."""

    def __init__(self, entries: list[DomainMapEntry] | None = None) -> None:
        self._entries = {e.domain.lower(): e for e in entries or []}

    def map_user(self, username: str, profile_suffix: str | None) -> MappedUser:
        if profile_suffix and "@" not in username:
            username = f"{username}@{profile_suffix.lstrip('@')}"
        domain = username.rpartition("@")[2] if "@" in username else None
        entry = self._entries.get(domain.lower()) if domain else None
        if entry is not None and entry.strip_domain:
            username = username.rpartition("@")[0]
        return MappedUser(username=username, domain=domain, entry=entry)


class Authenticator:
    """The one object the Xauth exchange calls: domain mapping + back end choice.

    The domain map's VR (if any) is put into the result when the back end named none;
    a RADIUS Virtual-Router attribute wins over the domain map (RADIUS is more specific).
    """

    def __init__(self, registry: Registry, default_backend: str,
                 domains: DomainMaps | None = None) -> None:
        self.registry = registry
        self.default_backend = default_backend
        self.domains = domains or DomainMaps()
        registry.get(default_backend)  # fail at start-up, not at the first login

    async def authenticate(self, username: str | bytes, password: bytes, nas: NasInfo,
                           profile_suffix: str | None = None) -> AuthResult:
        if isinstance(username, bytes):
            username = strip_password_nul(username).decode("utf-8", errors="replace")
        mapped = self.domains.map_user(username, profile_suffix)
        entry = mapped.entry
        backend = self.registry.get(entry.backend if entry and entry.backend else self.default_backend)
        request = AuthRequest.from_xauth(mapped.username, password, nas,
                                         server_group=entry.server_group if entry else None)
        result = await backend.authenticate(request)
        log.info("AAA %s for %r via %s%s", "grant" if result.granted else "refuse",
                 request.username, backend.name, f": {result.reason}" if result.reason else "")
        if result.granted and entry and entry.virtual_router and not result.virtual_router:
            result = result.with_overrides(virtual_router=entry.virtual_router)
        return result
