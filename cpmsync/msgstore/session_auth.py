"""Commands of any state and of the not-authenticated state: CAPABILITY NOOP LOGOUT ID,
STARTTLS, LOGIN, AUTHENTICATE PLAIN (with SASL-IR), and the IDLE/SASL continuation lines.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl

from cpmsync.imap import (
    AuthenticateCommand,
    CapabilityCommand,
    CapabilityData,
    CheckCommand,
    ContinuationRequest,
    IdCommand,
    IdData,
    LoginCommand,
    LogoutCommand,
    NoopCommand,
    ResponseCode,
    StartTlsCommand,
    StatusResponse,
)
from cpmsync.imap.state import SubState
from cpmsync.logs import kv
from cpmsync.msgstore.errors import StoreError
from cpmsync.msgstore.session_base import (
    _Bad,
    _Close,
    _No,
    handles,
    log,
)
from cpmsync.msgstore.session_push import PushMixin

__all__ = ["AuthCommands"]


class AuthCommands(PushMixin):
    # ================================================================ any state

    @handles(CapabilityCommand)
    async def _capability(self, cmd: CapabilityCommand) -> None:
        self._emit(CapabilityData(tuple(self._capabilities())))
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, "CAPABILITY completed")

    @handles(NoopCommand, CheckCommand)
    async def _noop(self, cmd: NoopCommand | CheckCommand) -> None:
        await self._after_command(allow_expunge=True)
        self._ok(cmd.tag, f"{'NOOP' if isinstance(cmd, NoopCommand) else 'CHECK'} completed")

    @handles(LogoutCommand)
    async def _logout(self, cmd: LogoutCommand) -> None:
        self._emit(StatusResponse(None, "BYE", None, "Logging out"))
        self._ok(cmd.tag, "LOGOUT completed")
        self.state.logout()

    @handles(IdCommand)
    async def _id(self, cmd: IdCommand) -> None:
        self._emit(IdData((("name", "cpmsync-msgstore"), ("vendor", "cpmsync"), ("version", "0.1.0"))))
        self._ok(cmd.tag, "ID completed")

    # ================================================================ not authenticated

    @handles(StartTlsCommand)
    async def _starttls(self, cmd: StartTlsCommand) -> None:
        if not self._starttls_available():
            raise _Bad("STARTTLS is not available")
        self._ok(cmd.tag, "Begin TLS negotiation now")
        await self._flush_out()
        # RFC 3501 6.2.1 / CVE-2011-0411: plaintext pipelined after STARTTLS must not run as if it had
        # come over TLS, so drop whatever was read before the handshake.
        self.conn.take_buffered()
        self._drop_pending_input()
        assert self.ctx.ssl_context is not None
        try:
            async with asyncio.timeout(30):
                await self.writer.start_tls(self.ctx.ssl_context)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError):
            raise _Close from None
        self.tls = True

    @handles(LoginCommand)
    async def _login(self, cmd: LoginCommand) -> None:
        if self._login_disabled():
            raise _No("Plaintext login is disabled: use STARTTLS or the TLS port", "PRIVACYREQUIRED")
        await self._authenticate_user(cmd.tag, cmd.username, cmd.password)

    @handles(AuthenticateCommand)
    async def _authenticate(self, cmd: AuthenticateCommand) -> None:
        if cmd.mechanism.upper() != "PLAIN":
            raise _No(f"mechanism {cmd.mechanism} is not supported", "CANNOT")
        if self._login_disabled():
            raise _No("Plaintext authentication is disabled: use STARTTLS", "PRIVACYREQUIRED")
        if cmd.initial_response is not None:
            if not self._ext("SASL-IR"):
                raise _Bad("SASL-IR is not enabled")
            await self._sasl_plain(cmd.tag, cmd.initial_response)
            return
        self._sasl_tag = cmd.tag
        self.conn.enter_sasl()
        self._emit(ContinuationRequest(""))

    async def _raw_line(self, data: bytes) -> None:
        if self.state.sub is SubState.IDLE:
            tag = self._idle_tag or "*"
            self.state.leave_sub()
            self._idle_tag = None
            if data.strip().upper() == b"DONE":
                await self._after_command(allow_expunge=True)
                self._ok(tag, "IDLE terminated")
            else:
                self._tagged(tag, "BAD", "expected DONE")
            return
        if self.state.sub is SubState.SASL:
            tag = self._sasl_tag or "*"
            self.state.leave_sub()
            self._sasl_tag = None
            if data.strip() == b"*":
                self._tagged(tag, "BAD", "AUTHENTICATE cancelled")
                return
            try:
                raw = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                self._tagged(tag, "BAD", "invalid base64")
                return
            try:
                await self._sasl_plain(tag, raw)
            except _No as e:
                self._tagged(tag, "NO", str(e), ResponseCode(e.code) if e.code else None)
            return
        self._emit(StatusResponse(None, "BAD", None, "unexpected line"))

    async def _sasl_plain(self, tag: str, raw: bytes) -> None:
        parts = raw.split(b"\0")
        if len(parts) != 3:
            self._tagged(tag, "BAD", "malformed PLAIN response")
            return
        authzid, user, password = (p.decode("utf-8", "surrogateescape") for p in parts)
        if authzid and authzid != user:
            await self._auth_failed()
            raise _No("authorization identity differs", "AUTHORIZATIONFAILED")
        await self._authenticate_user(tag, user, password)

    async def _auth_failed(self) -> None:
        await asyncio.sleep(self.settings.limits.auth_failure_delay_ms / 1000)

    async def _authenticate_user(self, tag: str, user: str, password: str) -> None:
        ok = await self._db(self.store.verify_password, user, password)
        if not ok:
            log.info("authentication failed", extra=kv(session=self.id, peer=self.peer_host))
            await self._auth_failed()
            raise _No("Authentication failed", "AUTHENTICATIONFAILED")
        if not await self.ctx.claim_user(user):
            raise _No("Too many connections for this user", "LIMIT")
        self.user = user
        self.state.authenticated()
        self._hear_changes(user)
        try:
            self.subscribed = await self._db(self.store.subscribed_names, user)
        except StoreError:
            self.subscribed = set()
        log.info("login", extra=kv(session=self.id, user=user, peer=self.peer_host))
        self._ok(tag, "Logged in", ResponseCode("CAPABILITY", tuple(self._capabilities())))
