"""Transaction exchange (ISAKMP exchange type 6): Xauth, then Mode-Config.

The task the engine calls through `Responder.register_exchange(
ExchangeType.TRANSACTION, task)` (strongSwan: xauth then mode_config tasks on
one IKE SA). Per dynamic phase 1 SA it keeps a `Session`:

* Xauth (draft-ietf-ipsec-isakmp-xauth-06), we are the edge device: right
  after phase 1 we send REQUEST(USER_NAME, USER_PASSWORD); the REPLY becomes
  an `XauthCredentials` event and we wait for the daemon's AAA answer
  (`xauth_result`), then SET(STATUS) / ACK. A denial re-prompts until
  `xauth_max_attempts`, then STATUS=FAIL and the phase 1 SA is deleted.
* Mode-Config (draft-dukes-ike-mode-cfg-02): the daemon hands us the
  subscriber's `ModeConfig` (`set_config`); a client REQUEST (pull) is
  answered with exactly what it asked for, a push SET is sent when the
  policy says so. A REQUEST that arrives before Xauth succeeded or before
  the configuration is known is queued, never dropped.
* Then `ctx.transaction_complete(sa)`: Quick Mode is allowed.

Each of our requests is a `PendingMessage` keyed by its message ID (each
Transaction pair has its own M-ID and IV chain, mode-cfg-02 §3.1): the
answer must carry that M-ID, the expected CFG type and our identifier. Any
other message - unexpected CFG type, unknown identifier or M-ID, no or
several attribute payloads - is ignored and counted in `stats`; it never
raises past the engine boundary except as the engine's own HASH/decryption
errors.

Timeouts use the engine's per-SA transaction timer (`sa.transaction_deadline`,
which deletes the SA with a Delete notify) and its retransmissions: the
client must answer each of our requests within `xauth_timeout`, the daemon
must answer AAA within `aaa_timeout`, and a pull client must ask for its
configuration within `modecfg_timeout` after Xauth.

Sans-I/O: no sockets, no clock; `ctx.now` is the time. Passwords are never
logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..engine import Responder, SaContext
from ..enums import CfgType, ConfigAttribute, ExchangeType, lookup
from ..ike_sa import IkeSa
from ..message import Message
from ..modecfg import (
    MODECFG_TABLE,
    ModeConfig,
    is_modecfg_payload,
    push_attributes,
    reply_attributes,
    requested_types,
)
from ..payloads import AttributePayload, DataAttribute
from ..transaction_events import ModeConfigDone, XauthCredentials, XauthFailed, XauthSucceeded
from ..xauth import XAUTH_TABLE, InvalidXauthReply, parse_reply, request_attributes, status_attributes

__all__ = ["TransactionPolicy", "TransactionTask", "PendingMessage", "QueuedRequest", "Session"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransactionPolicy:
    """Xauth / Mode-Config settings (would sit in ResponderPolicy; see report)."""

    xauth_max_attempts: int = 3
    #: the client must answer each REQUEST / SET within this time
    xauth_timeout: float = 30.0
    #: the daemon must call `xauth_result` within this time (RADIUS failover)
    aaa_timeout: float = 60.0
    #: also run Xauth when phase 1 used plain PSK (auth method 1) but the peer
    #: sent the Xauth VID; otherwise only XAUTHInitPreShared (65001) does
    xauth_with_plain_psk: bool = True
    #: XAUTH_MESSAGE shown when re-prompting, if the daemon gives none
    retry_message: str | None = None
    #: how long to wait for the ACK of STATUS=FAIL before deleting the SA
    failure_linger: float = 5.0
    #: push: send CFG_SET after Xauth instead of waiting for the client to ask
    modecfg_push: bool = False
    #: iOS quirk: clients that skip Mode-Config on reconnect. Quick Mode is
    #: allowed right after Xauth; a later REQUEST is still answered.
    modecfg_optional: bool = False
    #: a pull client must send its REQUEST within this time after Xauth
    modecfg_timeout: float = 30.0
    #: answer a REQUEST with everything we have (what strongSwan's gateway does)
    answer_unrequested: bool = False
    #: our APPLICATION_VERSION answer
    application_version: str = "dynipsec"


@dataclass(frozen=True)
class PendingMessage:
    """One of our requests, waiting for its answer (keyed by message ID)."""

    kind: str  # "xauth_request" / "xauth_status" / "modecfg_set"
    identifier: int
    expects: CfgType


@dataclass(frozen=True)
class QueuedRequest:
    """A client's Mode-Config REQUEST we cannot answer yet."""

    message_id: int
    identifier: int
    requested: tuple[int, ...]


@dataclass
class Session:
    """Transaction state of one dynamic phase 1 SA."""

    sa: IkeSa
    xauth: str = "start"  # XAUTH_TABLE
    modecfg: str = "waiting"  # MODECFG_TABLE
    attempt: int = 0
    username: str | None = None
    config: ModeConfig | None = None
    queued: QueuedRequest | None = None
    pending: dict[int, PendingMessage] = field(default_factory=dict)
    failure_reported: bool = False
    #: per-SA overrides of the policy (the subscriber's tunnel profile, `configure`)
    max_attempts: int | None = None
    xauth_timeout: float | None = None
    answer_unrequested: bool | None = None

    def setting(self, name: str, policy: "TransactionPolicy"):
        """This SA's value of a per-profile setting, else the policy's."""
        value = getattr(self, name)
        return getattr(policy, _POLICY_NAMES.get(name, name)) if value is None else value


#: Session override -> TransactionPolicy field
_POLICY_NAMES = {"max_attempts": "xauth_max_attempts"}


#: The answer each of our requests expects (xauth-06 §4.1/§4.2, mode-cfg-02 §3.2).
EXPECTED_ANSWER = {
    "xauth_request": CfgType.REPLY,
    "xauth_status": CfgType.ACK,
    "modecfg_set": CfgType.ACK,
}

#: Engine deletion reasons that mean "nobody answered in time".
_TIMEOUT_REASONS = {"retransmit-timeout": "timeout", "transaction-timeout": "timeout"}


class TransactionTask:
    """The Transaction exchange handler (engine's `TransactionHandler`)."""

    def __init__(self, responder: Responder, policy: TransactionPolicy | None = None) -> None:
        self._responder = responder
        self.policy = policy or TransactionPolicy()
        self._sessions: dict[str, Session] = {}
        self.stats: Counter[str] = Counter()

    @classmethod
    def attach(cls, responder: Responder,
               policy: TransactionPolicy | None = None) -> "TransactionTask":
        """Create the task and register it for exchange type 6."""
        task = cls(responder, policy)
        responder.register_exchange(ExchangeType.TRANSACTION, task)
        return task

    def context(self, now: float) -> SaContext:
        """A fresh context for calls from the daemon (AAA answers, config)."""
        return SaContext(self._responder, now)

    def state(self, sa_id: str) -> tuple[str, str] | None:
        """(Xauth state, Mode-Config state) of an SA, for status displays."""
        session = self._sessions.get(sa_id)
        return (session.xauth, session.modecfg) if session else None

    # ------------------------------------------------------------ engine hooks
    def phase1_established(self, ctx: SaContext, sa: IkeSa) -> None:
        self._prune()
        session = Session(sa)
        self._sessions[sa.sa_id] = session
        if sa.xauth_required or self.policy.xauth_with_plain_psk:
            session.xauth = XAUTH_TABLE.next(session.xauth, "request_sent")
            self._send_xauth_request(ctx, session, None)
            return
        ctx.sa_log(sa).info("plain PSK phase 1, Xauth not required by policy")
        session.xauth = XAUTH_TABLE.next(session.xauth, "skip")
        self._xauth_over(ctx, session)

    def handle(self, ctx: SaContext, sa: IkeSa, message: Message) -> None:
        session = self._live_session(sa.sa_id)
        if session is None or session.sa is not sa:
            self._ignore(sa, "no_session", "Transaction on an SA without Xauth/Mode-Config")
            return
        decrypted = ctx.decrypt_and_verify(sa, message)  # HASH(1), mode-cfg-02 §3.1
        payload = _single_attribute_payload(decrypted)
        if payload is None:
            self._ignore(sa, "payloads", "not exactly one attribute payload")
            return
        message_id = message.header.message_id
        pending = session.pending.get(message_id)
        if pending is None:
            self._unsolicited(ctx, session, message_id, payload)
            return
        if payload.cfg_type != pending.expects:
            self._ignore(sa, "wrong_cfg_type", f"{lookup(CfgType, payload.cfg_type).name} on "
                         f"{message_id:08x}, {pending.expects.name} expected")
            return
        # strongSwan 5.9 clients answer Xauth with identifier 0 (their xauth_generic
        # builds a fresh CP payload): 0 means "not echoed", anything else must match.
        if payload.identifier not in (pending.identifier, 0):
            self._ignore(sa, "wrong_identifier", f"identifier {payload.identifier} on "
                         f"{message_id:08x}, {pending.identifier} expected")
            return
        del session.pending[message_id]
        ctx.request_answered(sa, message_id)
        _forget_iv(sa, message_id)
        self._ON_ANSWER[pending.kind](self, ctx, session, payload)

    # ------------------------------------------------------------ daemon API
    def configure(self, ctx: SaContext, sa_id: str, *, max_attempts: int | None = None,
                  xauth_timeout: float | None = None,
                  answer_unrequested: bool | None = None) -> bool:
        """Per-SA settings (the subscriber's tunnel profile, known right after phase 1):
        Xauth attempts and client answer time, whether a Mode-Config REQUEST is answered
        with unrequested attributes too. None keeps the policy's value. A pending Xauth
        REQUEST is re-armed with the new timeout. False if the SA is unknown."""
        session = self._live_session(sa_id)
        if session is None:
            return False
        if max_attempts is not None:
            session.max_attempts = max_attempts
        if answer_unrequested is not None:
            session.answer_unrequested = answer_unrequested
        if xauth_timeout is not None:
            session.xauth_timeout = xauth_timeout
            if session.xauth == "requested":
                self._expect_within(ctx, session.sa, xauth_timeout)
        return True

    def xauth_result(self, ctx: SaContext, sa_id: str, granted: bool,
                     message: str | None = None, *, final: bool = False,
                     reason: str = "denied") -> bool:
        """AAA's answer for the last `XauthCredentials` of this SA.

        Granted: SET(STATUS=OK). Denied: re-prompt while attempts are left,
        else SET(STATUS=FAIL), `XauthFailed` and the SA goes. `final`: no
        re-prompt, STATUS=FAIL now (a refusal no retry can change: no license,
        no address); `reason` is the `XauthFailed` reason. `message` is
        shown to the user (XAUTH_MESSAGE). False if the SA is gone or not
        waiting for AAA (a late answer): nothing is sent then.
        """
        session = self._live_session(sa_id)
        if session is None or session.xauth != "checking":
            self.stats["late_aaa_result"] += 1
            log.info("[%s] AAA result ignored: %s", sa_id,
                     "SA gone" if session is None else f"Xauth is {session.xauth}")
            return False
        if not granted:
            self._failed_attempt(ctx, session, reason, message, final=final)
            return True
        session.xauth = XAUTH_TABLE.next(session.xauth, "granted")
        ctx.sa_log(session.sa).info("Xauth user %r granted", session.username)
        self._send_request(ctx, session, "xauth_status", CfgType.SET,
                           status_attributes(True, message))
        self._expect_within(ctx, session.sa, session.setting("xauth_timeout", self.policy))
        return True

    def set_config(self, ctx: SaContext, sa_id: str, config: ModeConfig) -> bool:
        """The subscriber's configuration (daemon, at grant time). Answers a
        queued REQUEST, or pushes, as soon as Xauth has succeeded."""
        session = self._live_session(sa_id)
        if session is None:
            self.stats["config_for_unknown_sa"] += 1
            return False
        session.config = config
        self._advance_modecfg(ctx, session)
        return True

    def phase1_deleted(self, ctx: SaContext, sa_id: str, reason: str) -> None:
        """The engine removed the SA (it calls this for every registered task;
        calling it again is harmless): report an unfinished Xauth as failed
        (reason "timeout" when nobody answered) and forget the SA."""
        session = self._sessions.pop(sa_id, None)
        if session is None or session.xauth == "succeeded" or session.failure_reported:
            return
        ctx.emit(XauthFailed(sa_id, session.username, _TIMEOUT_REASONS.get(reason, reason)))

    # ------------------------------------------------------------ Xauth
    def _send_xauth_request(self, ctx: SaContext, session: Session, message: str | None) -> None:
        session.attempt += 1
        self._send_request(ctx, session, "xauth_request", CfgType.REQUEST,
                           request_attributes(message))
        self._expect_within(ctx, session.sa, session.setting("xauth_timeout", self.policy))

    def _on_xauth_reply(self, ctx: SaContext, session: Session, payload: AttributePayload) -> None:
        sa_log = ctx.sa_log(session.sa)
        try:
            reply = parse_reply(payload)
        except InvalidXauthReply as exc:
            self.stats["xauth_invalid_reply"] += 1
            sa_log.warning("unusable Xauth REPLY, attempt %d: %s", session.attempt, exc.message)
            self._failed_attempt(ctx, session, "invalid-reply", None)
            return
        session.xauth = XAUTH_TABLE.next(session.xauth, "reply")
        session.username = reply.username
        sa_log.info("Xauth user %r, attempt %d: asking AAA", reply.username, session.attempt)
        self._expect_within(ctx, session.sa, self.policy.aaa_timeout)
        ctx.emit(XauthCredentials(session.sa.sa_id, reply.username, reply.password,
                                  session.attempt))

    def _failed_attempt(self, ctx: SaContext, session: Session, reason: str,
                        message: str | None, *, final: bool = False) -> None:
        if not final and session.attempt < session.setting("max_attempts", self.policy):
            session.xauth = XAUTH_TABLE.next(session.xauth, "retry")
            self._send_xauth_request(ctx, session, message or self.policy.retry_message)
            return
        session.xauth = XAUTH_TABLE.next(session.xauth, "give_up")
        ctx.sa_log(session.sa).warning("Xauth user %r failed after %d attempts (%s)",
                                       session.username, session.attempt, reason)
        # xauth-06 §4.2: STATUS=FAIL, the client ACKs, then we delete phase 1.
        # Not retransmitted: the SA goes after `failure_linger` either way.
        self._send_request(ctx, session, "xauth_status", CfgType.SET,
                           status_attributes(False, message), retransmit=False)
        session.failure_reported = True
        ctx.emit(XauthFailed(session.sa.sa_id, session.username, reason))
        self._expect_within(ctx, session.sa, self.policy.failure_linger)

    def _on_status_ack(self, ctx: SaContext, session: Session, payload: AttributePayload) -> None:
        session.xauth = XAUTH_TABLE.next(session.xauth, "ack")
        if session.xauth == "failed":
            self._sessions.pop(session.sa.sa_id, None)
            ctx.delete_sa(session.sa, "xauth-failed")
            return
        ctx.emit(XauthSucceeded(session.sa.sa_id, session.username or ""))
        self._xauth_over(ctx, session)

    def _xauth_over(self, ctx: SaContext, session: Session) -> None:
        """Xauth succeeded (or was not required): on to Mode-Config."""
        if self.policy.modecfg_optional:
            ctx.transaction_complete(session.sa)
        else:
            self._expect_within(ctx, session.sa, self.policy.modecfg_timeout)
        self._advance_modecfg(ctx, session)

    # ------------------------------------------------------------ Mode-Config
    def _unsolicited(self, ctx: SaContext, session: Session, message_id: int,
                     payload: AttributePayload) -> None:
        """A message on an M-ID we did not open: only a client's Mode-Config
        REQUEST may start an exchange (client-initiated Xauth is not ours)."""
        if payload.cfg_type == CfgType.REQUEST and payload.attributes \
                and is_modecfg_payload(payload):
            self._on_modecfg_request(ctx, session, message_id, payload)
            return
        self._ignore(session.sa, "unexpected_message_id",
                     f"{lookup(CfgType, payload.cfg_type).name} on unknown M-ID {message_id:08x}")

    def _on_modecfg_request(self, ctx: SaContext, session: Session, message_id: int,
                            payload: AttributePayload) -> None:
        if session.queued is not None:  # a newer REQUEST replaces the queued one
            _forget_iv(session.sa, session.queued.message_id)
            self.stats["modecfg_request_replaced"] += 1
        requested = tuple(requested_types(payload))
        session.queued = QueuedRequest(message_id, payload.identifier, requested)
        ctx.sa_log(session.sa).info("Mode-Config REQUEST %08x for %s", message_id,
                                    ", ".join(lookup(ConfigAttribute, t).name for t in requested))
        self._advance_modecfg(ctx, session)
        if session.queued is not None:
            self.stats["modecfg_request_queued"] += 1
            ctx.sa_log(session.sa).info("Mode-Config REQUEST queued: %s",
                                        "Xauth not done" if session.xauth != "succeeded"
                                        else "configuration not set yet")

    def _advance_modecfg(self, ctx: SaContext, session: Session) -> None:
        if session.xauth != "succeeded" or session.config is None:
            return
        if session.queued is not None:
            self._send_modecfg_reply(ctx, session)
        elif self.policy.modecfg_push and session.modecfg == "waiting":
            self._send_request(ctx, session, "modecfg_set", CfgType.SET,
                               push_attributes(session.config))
            self._modecfg_step(ctx, session, "set_sent")
            self._expect_within(ctx, session.sa, session.setting("xauth_timeout", self.policy))

    def _send_modecfg_reply(self, ctx: SaContext, session: Session) -> None:
        request, session.queued = session.queued, None
        assert request is not None and session.config is not None  # checked by the caller
        attributes = reply_attributes(request.requested, session.config,
                                      self.policy.application_version,
                                      answer_unrequested=session.setting(
                                          "answer_unrequested", self.policy))
        # mode-cfg-02 §3.2: the REPLY echoes the REQUEST's identifier and M-ID
        ctx.send_protected(session.sa, ExchangeType.TRANSACTION, request.message_id,
                           [AttributePayload(CfgType.REPLY, request.identifier, attributes)])
        _forget_iv(session.sa, request.message_id)
        self._modecfg_step(ctx, session, "reply_sent")

    def _on_modecfg_ack(self, ctx: SaContext, session: Session, payload: AttributePayload) -> None:
        self._modecfg_step(ctx, session, "ack")

    def _modecfg_step(self, ctx: SaContext, session: Session, event: str) -> None:
        before = session.modecfg
        session.modecfg = MODECFG_TABLE.next(before, event)
        if session.modecfg == "done" and before != "done":
            assert session.config is not None
            ctx.sa_log(session.sa).info("Mode-Config done: %s", session.config.address)
            ctx.emit(ModeConfigDone(session.sa.sa_id, session.config.address))
            ctx.transaction_complete(session.sa)

    # ------------------------------------------------------------ plumbing
    def _send_request(self, ctx: SaContext, session: Session, kind: str, cfg_type: CfgType,
                      attributes: list[DataAttribute], *, retransmit: bool = True) -> int:
        """Open a Transaction pair: fresh random M-ID and identifier."""
        message_id = _new_message_id(ctx, session)
        identifier = int.from_bytes(ctx.random(2), "big")
        session.pending[message_id] = PendingMessage(kind, identifier, EXPECTED_ANSWER[kind])
        ctx.send_protected(session.sa, ExchangeType.TRANSACTION, message_id,
                           [AttributePayload(cfg_type, identifier, attributes)],
                           retransmit=retransmit)
        return message_id

    @staticmethod
    def _expect_within(ctx: SaContext, sa: IkeSa, seconds: float) -> None:
        """Arm the engine's transaction timer (it deletes the SA, with a
        Delete notify, when it fires); not once the transaction is complete."""
        if not sa.transaction_done:
            sa.transaction_deadline = ctx.now + seconds

    def _live_session(self, sa_id: str) -> Session | None:
        session = self._sessions.get(sa_id)
        if session is not None and self._responder.sa(sa_id) is not session.sa:
            del self._sessions[sa_id]  # the engine removed the SA
            return None
        return session

    def _prune(self) -> None:
        """Forget sessions of SAs the engine removed without `phase1_deleted`
        reaching us, so the table stays bounded by live SAs. The engine calls
        `phase1_deleted` on every removal, so normally there is nothing to do:
        scan (O(sessions)) only when there are more sessions than live SAs
        (this ran once per login and cost O(SAs) each time)."""
        if len(self._sessions) <= self._responder.sa_count:
            return
        for sa_id in [s for s, session in self._sessions.items()
                      if self._responder.sa(s) is not session.sa]:
            del self._sessions[sa_id]

    def _ignore(self, sa: IkeSa, reason: str, detail: str) -> None:
        self.stats[f"ignored_{reason}"] += 1
        log.info("[%s] Transaction message ignored: %s", sa.sa_id, detail)

    _ON_ANSWER: dict[str, Callable[..., None]] = {
        "xauth_request": _on_xauth_reply,
        "xauth_status": _on_status_ack,
        "modecfg_set": _on_modecfg_ack,
    }


def _single_attribute_payload(message: Message) -> AttributePayload | None:
    found = message.payloads_of(AttributePayload)
    return found[0] if len(found) == 1 else None


def _new_message_id(ctx: SaContext, session: Session) -> int:
    """Random, non-zero, not in use on this SA (RFC 2408 §3.1: unique)."""
    sa = session.sa
    while True:
        message_id = int.from_bytes(ctx.random(4), "big")
        if message_id and message_id not in session.pending and message_id not in sa.quick_modes \
                and message_id not in sa.seen_message_ids:
            return message_id


def _forget_iv(sa: IkeSa, message_id: int) -> None:
    """A finished pair needs no IV chain any more (crypto/iv.py keeps few)."""
    if sa.cipher is not None:
        sa.cipher.ivs.forget(message_id)
