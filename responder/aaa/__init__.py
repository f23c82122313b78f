"""AAA for dynamic subscribers: the back-end interface, local users, RADIUS
authentication and accounting, and the RFC 5176 Dynamic Authorization listener."""
from responder.aaa.base import (AaaBackend, AaaError, AuthRequest, AuthResult, Authenticator,
                                DomainMapEntry, DomainMaps, NasInfo, Registry,
                                strip_password_nul)

__all__ = ["AaaBackend", "AaaError", "AuthRequest", "AuthResult", "Authenticator",
           "DomainMapEntry", "DomainMaps", "NasInfo", "Registry", "strip_password_nul"]
