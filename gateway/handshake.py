"""The ``connect`` request: params validation, negotiation, shared-secret and device auth, pairing, hello-ok.

Owns ``handle_connect`` in the legacy's order (``ws-connection/connect-auth.ts``): ConnectParams schema ->
protocol negotiation (1002) -> role -> shared secret -> missing-device rules (local CLI/backend keep their scopes,
others lose them; no credentials and no device -> ``NOT_PAIRED device identity required``) -> device proof
(``gateway.device.verify_device``) -> device-token fallback -> rate limit -> pairing (silent on loopback, else
``NOT_PAIRED pairing required``; a paired device claiming another platform or device family gets ``NOT_PAIRED``
reason ``metadata-upgrade``) -> ``hello-ok``. Every failure answers the legacy's error object, then closes
with the legacy's code and a reason cut at 120 bytes. Failed shared secrets wait the legacy's delay.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import orjson
from aiohttp import web

from gateway.app import AUTH_KEY, CONFIG_KEY, DEVICES_KEY, STATE_KEY
from gateway.auth import AuthResult, provided_kind
from gateway.device import b64url, metadata_changed, verify_device
from gateway.hello import _hmac_hex, _journal_key, build_hello
from gateway.protocol import (
    CONNECT_PARAMS,
    error_shape,
    format_errors,
    negotiate_protocol,
    protocol_mismatch_error,
    truncate_close_reason,
    validate,
)
from gateway.state import ClientConn, dumps

__all__ = ["handle_connect"]

logger = logging.getLogger(__name__)

_MISMATCH = {"token_mismatch", "password_mismatch", "device_token_mismatch"}


async def _publish_model_catalog(app: web.Application, conn: ClientConn, params: dict[str, Any]) -> None:
    """The ``model-catalog-snapshot`` capability: a Control UI client that asks gets ``models.snapshot`` (no seq)."""
    requested = params.get("modelCatalog")
    if params["client"]["id"] != "openclaw-control-ui" or "model-catalog-snapshot" not in (params.get("caps") or []):
        return
    if not requested or "shortId" in requested:  # shortId needs sessions.resolve, which pyclaw does not implement
        return
    from gateway.methods.agents import models_catalog

    scope = {"sessionKey": requested["sessionKey"], **({"agentId": requested["agentId"]} if "agentId" in requested else {})} \
        if requested.get("sessionKey") else {"agentId": requested.get("agentId") or "main"}
    conn.enqueue(dumps({"type": "event", "event": "models.snapshot",
                        "payload": {"target": requested, "scope": scope, "catalog": models_catalog(app)}}))


def _fail(conn: ClientConn, rid: Any, error: dict[str, Any], code: int = 1008, reason: str | None = None) -> None:
    conn.enqueue(dumps({"type": "res", "id": rid, "ok": False, "error": error}))
    conn.request_close(code, truncate_close_reason(reason if reason is not None else error["message"]))


def _file_pairing_request(state: Any, conn: ClientConn, device_id: str, role: str, scopes: list[str]) -> str:
    """A pairing request for an unknown or changed device: announced to operators, its id returned."""
    request_id = str(uuid.uuid4())
    state.broadcast("device.pair.requested", {"requestId": request_id, "deviceId": device_id, "role": role,
                                              "scopes": scopes, "ts": conn.connected_at}, drop_if_slow=True)
    return request_id


def _fail_metadata_upgrade(state: Any, conn: ClientConn, rid: Any, entry: dict[str, Any], device_id: str, role: str,
                           scopes: list[str]) -> None:
    """A paired device claiming another platform or device family: the legacy files a pairing request and answers
    ``NOT_PAIRED`` reason ``metadata-upgrade`` (never silent for CLI clients), closing 1008 with the request id."""
    request_id = _file_pairing_request(state, conn, device_id, role, scopes)
    message = "pairing required: device identity changed and must be re-approved"
    details: dict[str, Any] = {
        "code": "PAIRING_REQUIRED", "reason": "metadata-upgrade", "requestId": request_id,
        "remediationHint": "Review the refreshed device details, then approve the pending request.",
        "deviceId": device_id, "requestedRole": role, "requestedScopes": scopes,
    }
    if entry.get("roles"):
        details["approvedRoles"] = list(entry["roles"])
    if entry.get("scopes"):
        details["approvedScopes"] = list(entry["scopes"])
    _fail(conn, rid, error_shape("NOT_PAIRED", message, details=details), 1008,
          f"{message} (requestId: {request_id})")


async def handle_connect(request: web.Request, conn: ClientConn, rid: Any, params: Any, nonce: str,
                         log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
    app = request.app
    state, config, auth, devices = app[STATE_KEY], app[CONFIG_KEY], app[AUTH_KEY], app[DEVICES_KEY]
    errors = validate(CONNECT_PARAMS, params)
    if errors:
        message = f"invalid connect params: {format_errors(errors)}"
        log.warning("%s", message)
        _fail(conn, rid, error_shape("INVALID_REQUEST", message))
        return
    client = params["client"]
    role = params.get("role") or "operator"
    protocol = negotiate_protocol(params["minProtocol"], params["maxProtocol"], mode=client["mode"], role=role)
    if protocol is None:
        _fail(conn, rid, protocol_mismatch_error(params["minProtocol"], params["maxProtocol"]), 1002, "protocol mismatch")
        return
    if role not in ("operator", "node"):
        _fail(conn, rid, error_shape("INVALID_REQUEST", "invalid role"), 1008, "invalid role")
        return
    scopes: list[str] = list(params.get("scopes") or [])
    creds = params.get("auth") or {}
    device = params.get("device")
    local = auth.is_local_request(conn.peer, request.headers)
    result = auth.check_shared_secret(creds.get("token"), creds.get("password"), conn.peer, request.headers)
    has_shared = bool(creds.get("token") or creds.get("password"))

    async def reject(res: AuthResult) -> None:
        if res.reason in _MISMATCH:
            await auth.failure_delay()
        failure = auth.connect_failure(res, creds, client, has_device=bool(device), local=local)
        log.warning("unauthorized: reason=%s auth=%s device=%s", res.reason, provided_kind(creds), "yes" if device else "no")
        _fail(conn, rid, failure.error(), 1008, failure.message)

    method = result.method
    if device is None and client["id"] in ("openclaw-control-ui", "webchat-ui") and not (
            config.get("gateway.controlUi.allowInsecureAuth") or config.get("gateway.controlUi.dangerouslyDisableDeviceAuth")):
        message = "control ui requires device identity (use HTTPS or localhost secure context)"
        _fail(conn, rid, error_shape("INVALID_REQUEST", message, details={"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"}))
        return
    if device is None:
        if result.ok and role == "operator":
            if not (local and client["mode"] in ("cli", "backend")) or client["mode"] == "probe":
                scopes = []
        elif result.rate_limited or (has_shared and not result.ok):
            await reject(result)
            return
        else:
            _fail(conn, rid, error_shape("NOT_PAIRED", "device identity required", details={"code": "DEVICE_IDENTITY_REQUIRED"}))
            return
    else:
        check = verify_device(device, params, role=role, scopes=scopes, nonce=nonce)
        if not check.ok:
            if result.reason in _MISMATCH:
                await auth.failure_delay()
            log.warning("device auth invalid: %s", check.reason)
            _fail(conn, rid, check.error())
            return
        if not result.ok and not result.rate_limited:
            candidate = creds.get("deviceToken") or (creds.get("token") if result.reason == "token_mismatch" else None)
            if candidate:
                why = devices.verify_token(device["id"], candidate, role, scopes)
                if why is None:
                    result, method = AuthResult(True, method="device-token"), "device-token"
                elif creds.get("deviceToken"):
                    result = AuthResult(False, reason=why)
        if not result.ok:
            await reject(result)
            return
    auth_block: dict[str, Any] = {"method": method or "token", "role": role, "scopes": scopes}
    secret = config.auth.token if method == "token" else config.auth.password if method == "password" else None
    if device is None and role == "operator" and secret:
        # the legacy derives recoveryScope from its shared-auth session generation; ours is an HMAC of the secret
        generation = _hmac_hex(_journal_key(config.state_dir), secret.encode())[:32]
        material = orjson.dumps(["shared-auth", generation, ""])
        auth_block["recoveryScope"] = b64url(hashlib.sha256(material).digest())
    if device is not None:
        entry = devices.get(device["id"])
        if entry is None and not local:
            request_id = _file_pairing_request(state, conn, device["id"], role, scopes)
            _fail(conn, rid, error_shape("NOT_PAIRED", "pairing required",
                                         details={"code": "PAIRING_REQUIRED", "requestId": request_id}))
            return
        if entry is not None and metadata_changed(entry, client):
            _fail_metadata_upgrade(state, conn, rid, entry, device["id"], role, scopes)
            return
        devices.pair(device["id"], check.public_key or device["publicKey"], role=role, scopes=scopes, client=client)
        issued = devices.issue_token(device["id"], role, scopes)
        if role == "operator":
            material = orjson.dumps(["device-token", issued["token"]])
            auth_block["recoveryScope"] = b64url(hashlib.sha256(material).digest())
            auth_block["recoveryMigrationAllowed"] = True
        auth_block["deviceToken"] = issued["token"]
        auth_block["issuedAtMs"] = issued["issuedAtMs"]
        conn.device_id = device["id"]
    conn.role, conn.scopes, conn.client = role, frozenset(scopes), dict(client)
    hello = build_hello(app, conn, protocol=protocol, auth_block=auth_block)
    conn.enqueue(dumps({"type": "res", "id": rid, "ok": True, "payload": hello}))
    state.authorize(conn)
    await _publish_model_catalog(app, conn, params)
    log.info("connected client=%s mode=%s role=%s scopes=%d auth=%s", client["id"], client["mode"], role, len(scopes),
             auth_block["method"])
