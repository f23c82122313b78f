"""AAA interface, local back end, domain maps, the NUL-terminated password quirk."""
import asyncio
import ipaddress

import pytest

from responder.aaa.base import (AuthRequest, AuthResult, Authenticator, DomainMapEntry, DomainMaps,
                                NasInfo, Refusal, Registry, UnknownBackendError,
                                strip_password_nul)
from responder.aaa.local import LocalBackend, LocalUser

A = ipaddress.IPv4Address
NAS = NasInfo(nas_port=7, calling_station_id="198.18.1.5")


def run(coro):
    return asyncio.run(coro)


def users():
    return LocalBackend([
        LocalUser.from_config("alice", "alicepw", address="10.99.1.5", virtual_router="vr2",
                              dns=["10.50.0.53", "10.50.0.54"], wins=["10.50.0.137"],
                              session_timeout=3600, idle_timeout=600),
        LocalUser.from_config("bob", "bobpw"),
    ])


def test_strip_one_nul_only():
    assert strip_password_nul(b"secret\x00") == b"secret"
    assert strip_password_nul(b"secret\x00\x00") == b"secret\x00"
    assert strip_password_nul(b"secret") == b"secret"
    assert strip_password_nul(b"") == b""


def test_local_grant_carries_authorization():
    result = run(users().authenticate(AuthRequest("alice", b"alicepw", NAS)))
    assert result.granted and result.backend == "local"
    assert result.framed_ip == A("10.99.1.5") and result.virtual_router == "vr2"
    assert result.dns == (A("10.50.0.53"), A("10.50.0.54"))
    assert result.wins == (A("10.50.0.137"), None)
    assert (result.session_timeout, result.idle_timeout) == (3600, 600)


def test_local_refusals_have_reasons():
    backend = users()
    assert run(backend.authenticate(AuthRequest("alice", b"wrong", NAS))) == \
        AuthResult.refused("bad password", Refusal.CREDENTIALS_REJECTED, backend="local")
    unknown = run(backend.authenticate(AuthRequest("mallory", b"x", NAS)))
    assert unknown.reason == "unknown user" and unknown.refusal is Refusal.CREDENTIALS_REJECTED


def test_nul_terminated_password_quirk_via_from_xauth():
    request = AuthRequest.from_xauth(b"bob\x00", b"bobpw\x00", NAS)
    assert request.username == "bob" and request.password == b"bobpw"
    assert run(users().authenticate(request)).granted
    # two NULs: only one is the quirk, the other makes the password wrong
    assert not run(users().authenticate(AuthRequest.from_xauth("bob", b"bobpw\x00\x00", NAS))).granted


def test_password_not_in_repr():
    assert "alicepw" not in repr(AuthRequest("alice", b"alicepw", NAS))
    assert "alicepw" not in repr(LocalUser.from_config("alice", "alicepw"))


class Recorder:
    def __init__(self, name, result):
        self.name, self.result, self.requests = name, result, []

    async def authenticate(self, request):
        self.requests.append(request)
        return self.result


def test_registry_rejects_duplicates_and_unknown_names():
    registry = Registry()
    registry.register(users())
    with pytest.raises(Exception, match="twice"):
        registry.register(users())
    with pytest.raises(UnknownBackendError):
        registry.get("radius")
    with pytest.raises(UnknownBackendError):
        Authenticator(registry, default_backend="radius")


def test_domain_map_selects_backend_group_and_vr():
    registry = Registry()
    local = users()
    corp = Recorder("radius", AuthResult(granted=True, backend="radius"))
    registry.register(local)
    registry.register(corp)
    domains = DomainMaps([DomainMapEntry("corp", backend="radius", server_group="corp-servers",
                                         virtual_router="vr-corp")])
    auth = Authenticator(registry, default_backend="local", domains=domains)

    result = run(auth.authenticate(b"carol\x00", b"pw\x00", NAS, profile_suffix="corp"))
    assert result.granted and result.virtual_router == "vr-corp"
    sent = corp.requests[0]
    assert sent.username == "carol@corp" and sent.password == b"pw"
    assert sent.server_group == "corp-servers" and sent.nas.nas_port == 7

    # a VR from the back end wins over the domain map's
    corp.result = AuthResult(granted=True, virtual_router="vr-radius")
    assert run(auth.authenticate("dave", b"pw", NAS, "corp")).virtual_router == "vr-radius"
    # no suffix, no domain: the default back end
    assert run(auth.authenticate("alice", b"alicepw", NAS)).backend == "local"


def test_domain_map_strip_domain_and_user_typed_domain():
    maps = DomainMaps([DomainMapEntry("isp", strip_domain=True)])
    assert maps.map_user("eve", "isp").username == "eve"
    mapped = maps.map_user("eve@other", "isp")        # the user's own domain is kept
    assert mapped.username == "eve@other" and mapped.entry is None
