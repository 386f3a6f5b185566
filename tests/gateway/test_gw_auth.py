"""Connect-time auth, device identity and the rate limiter, against the legacy's error objects (reference §2.5, §3)."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gw_support import CLI_CLIENT, GatewayFactory, RunningGateway, open_client

from gateway.auth import RateLimiter
from gateway.config import RateLimitSettings
from gateway.device import b64url, build_device_payload, verify_device
from wire.device import device_id_from_public_key

SCOPES = ["operator.admin", "operator.read"]


class Device:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = b64url(raw)
        self.id = device_id_from_public_key(raw)

    def block(self, nonce: str, *, token: str | None, version: str = "v3", scopes: list[str] = SCOPES,
              signed_at: int | None = None, client: dict | None = None) -> dict:
        client = client or CLI_CLIENT
        signed_at = int(time.time() * 1000) if signed_at is None else signed_at
        payload = build_device_payload(version, device_id=self.id, client_id=client["id"], client_mode=client["mode"],
                                       role="operator", scopes=scopes, signed_at_ms=signed_at, token=token, nonce=nonce,
                                       platform=client.get("platform"), device_family=client.get("deviceFamily"))
        return {"id": self.id, "publicKey": self.public_key, "signature": b64url(self.key.sign(payload.encode())),
                "signedAt": signed_at, "nonce": nonce}


def mismatch(can_retry: bool) -> dict:
    return {"code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
            "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch", "canRetryWithDeviceToken": can_retry,
                        "recommendedNextStep": "retry_with_device_token" if can_retry else "update_auth_credentials"}}


async def test_wrong_token_without_device_is_delayed_and_closed(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        t0 = time.monotonic()
        res = await c.connect(auth={"token": "wrong"}, scopes=SCOPES)
        assert time.monotonic() - t0 >= 0.25  # the legacy's wrong-secret delay (0.27–0.53 s)
        assert res["error"] == mismatch(False)
        assert await c.closed() == (1008, mismatch(False)["message"])


async def test_wrong_token_with_device_suggests_device_token(gw: RunningGateway) -> None:
    dev = Device()
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": "wrong"}, scopes=SCOPES,
                              device=dev.block(c.challenge["payload"]["nonce"], token="wrong"))
        assert res["error"] == mismatch(True)


async def test_missing_token_and_missing_device(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        res = await c.connect(scopes=SCOPES)
        assert res["error"] == {"code": "NOT_PAIRED", "message": "device identity required",
                                "details": {"code": "DEVICE_IDENTITY_REQUIRED"}}
        assert await c.closed() == (1008, "device identity required")
    dev = Device()
    async with open_client(gw.url) as c:
        res = await c.connect(scopes=SCOPES, device=dev.block(c.challenge["payload"]["nonce"], token=None))
        assert res["error"] == {"code": "INVALID_REQUEST",
                                "message": "unauthorized: gateway token missing (use this gateway's gateway.auth.token or pair the device)",
                                "details": {"code": "AUTH_TOKEN_MISSING", "authReason": "token_missing",
                                            "canRetryWithDeviceToken": False, "recommendedNextStep": "update_auth_configuration"}}


async def test_device_v3_and_v2_pair_silently_and_device_token_works_later(gw: RunningGateway) -> None:
    dev = Device()
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": gw.token}, scopes=SCOPES,
                              device=dev.block(c.challenge["payload"]["nonce"], token=gw.token))
        assert res["ok"], res
        auth = res["payload"]["auth"]
        assert auth["method"] == "token" and auth["scopes"] == SCOPES and auth["recoveryMigrationAllowed"] is True
        device_token = auth["deviceToken"]
        paired = (await c.call("device.pair.list"))["payload"]
        assert [p["deviceId"] for p in paired["paired"]] == [dev.id] and paired["paired"][0]["approvedVia"] == "silent"
        assert device_token not in str(paired)  # tokens are never listed
    async with open_client(gw.url) as c:  # v2 payload, device token as auth.token after a shared-secret mismatch
        res = await c.connect(auth={"token": device_token}, scopes=SCOPES,
                              device=dev.block(c.challenge["payload"]["nonce"], token=device_token, version="v2"))
        assert res["ok"], res
        assert res["payload"]["auth"]["method"] == "device-token"
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"deviceToken": "bogus"}, scopes=SCOPES,
                              device=dev.block(c.challenge["payload"]["nonce"], token="bogus"))
        assert res["error"]["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"
        assert res["error"]["message"] == "unauthorized: device token mismatch (rotate/reissue device token)"


async def test_device_proof_failures_in_the_legacy_order(gw: RunningGateway) -> None:
    dev, other = Device(), Device()
    cases = [
        (lambda n: {**dev.block(n, token=None), "id": other.id}, "device identity mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH"),
        (lambda n: dev.block(n, token=None, signed_at=int(time.time() * 1000) - 11 * 60_000), "device signature expired", None),
        (lambda n: dev.block("other-nonce", token=None), "device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH"),
        (lambda n: {**dev.block(n, token=None), "signature": other.block(n, token=None)["signature"]}, "device signature invalid", None),
    ]
    for make, message, code in cases:
        async with open_client(gw.url) as c:
            res = await c.connect(auth={"token": gw.token}, scopes=SCOPES, device=make(c.challenge["payload"]["nonce"]))
            assert res["ok"] is False and res["error"]["message"] == message, res
            if code:
                assert res["error"]["details"]["code"] == code
            assert await c.closed() == (1008, message)


async def test_device_less_non_cli_client_loses_scopes_probe_gets_none(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": gw.token}, client={**CLI_CLIENT, "id": "gateway-client", "mode": "backend"})
        assert len(res["payload"]["auth"]["scopes"]) == 6  # local backend keeps its scopes
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": gw.token}, client={**CLI_CLIENT, "id": "openclaw-probe", "mode": "probe"})
        assert res["payload"]["auth"]["scopes"] == []


async def test_password_mode(gw_factory: GatewayFactory) -> None:
    async with gw_factory(data={"gateway": {"mode": "local", "auth": {"mode": "password", "password": "pw-secret-1"}}}) as g:
        async with open_client(g.url) as c:
            assert (await c.connect(auth={"password": "pw-secret-1"}))["ok"]
        async with open_client(g.url) as c:
            res = await c.connect(auth={"password": "nope"})
            assert res["error"]["message"] == "unauthorized: gateway password mismatch (use this gateway's gateway.auth.password)"
            assert res["error"]["details"]["code"] == "AUTH_PASSWORD_MISMATCH"


def test_rate_limiter_locks_out_after_max_attempts_and_exempts_loopback() -> None:
    now = [1000.0]
    rl = RateLimiter(RateLimitSettings(max_attempts=3, window_ms=60_000, lockout_ms=300_000), clock=lambda: now[0])
    for _ in range(2):
        rl.record_failure("10.0.0.5", "shared-secret")
    assert rl.retry_after_ms("10.0.0.5", "shared-secret") is None
    rl.record_failure("10.0.0.5", "shared-secret")
    assert rl.retry_after_ms("10.0.0.5", "shared-secret") == 300_000
    now[0] += 299
    assert rl.retry_after_ms("10.0.0.5", "shared-secret") == 1000
    now[0] += 2
    assert rl.retry_after_ms("10.0.0.5", "shared-secret") is None
    for _ in range(5):
        rl.record_failure("127.0.0.1", "shared-secret")
        rl.record_failure("127.0.0.1", "hook-auth")
    assert rl.retry_after_ms("127.0.0.1", "shared-secret") is None  # loopback exempt
    assert rl.retry_after_ms("127.0.0.1", "hook-auth") is not None  # the hooks limiter does not exempt loopback


async def test_rate_limited_connect_answers_auth_rate_limited(gw_factory: GatewayFactory) -> None:
    overrides = {"gateway": {"auth": {"rateLimit": {"maxAttempts": 2, "exemptLoopback": False}}}}
    async with gw_factory(overrides) as g:
        for _ in range(2):
            async with open_client(g.url) as c:
                assert (await c.connect(auth={"token": "bad"}))["ok"] is False
        async with open_client(g.url) as c:
            res = await c.connect(auth={"token": g.token})  # even the right token is refused while locked out
            err = res["error"]
            assert err["message"] == "unauthorized: too many failed authentication attempts (retry later)"
            assert err["retryable"] is True and err["retryAfterMs"] > 0
            assert err["details"]["code"] == "AUTH_RATE_LIMITED" and err["details"]["recommendedNextStep"] == "wait_then_retry"


def test_verify_device_accepts_pem_public_keys() -> None:
    dev = Device()
    pem = dev.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    block = {**dev.block("n1", token="t"), "publicKey": pem}
    params = {"client": CLI_CLIENT, "auth": {"token": "t"}}
    assert verify_device(block, params, role="operator", scopes=SCOPES, nonce="n1").ok
    assert verify_device({**block, "nonce": ""}, params, role="operator", scopes=SCOPES, nonce="n1").message == "device nonce required"


async def test_paired_device_with_changed_device_family_needs_re_approval(gw: RunningGateway) -> None:
    """Golden ws-connect-device-v3-family then ws-connect-device-v3 (same device): the legacy pins the paired platform
    and device family (compared trimmed and lower-cased) and answers a change with NOT_PAIRED metadata-upgrade."""
    dev = Device()
    desktop = {**CLI_CLIENT, "platform": "Linux", "deviceFamily": "Desktop"}
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": gw.token}, scopes=SCOPES, client=desktop,
                              device=dev.block(c.challenge["payload"]["nonce"], token=gw.token, client=desktop))
        assert res["ok"], res
    same = {**CLI_CLIENT, "platform": " linux", "deviceFamily": "DESKTOP"}
    async with open_client(gw.url) as c:  # same metadata after normalization: accepted
        res = await c.connect(auth={"token": gw.token}, scopes=SCOPES, client=same,
                              device=dev.block(c.challenge["payload"]["nonce"], token=gw.token, client=same))
        assert res["ok"], res
    async with open_client(gw.url) as c:  # no device family any more: a metadata change
        res = await c.connect(auth={"token": gw.token}, scopes=SCOPES,
                              device=dev.block(c.challenge["payload"]["nonce"], token=gw.token))
        error = res["error"]
        request_id = error["details"]["requestId"]
        assert error == {
            "code": "NOT_PAIRED", "message": "pairing required: device identity changed and must be re-approved",
            "details": {"code": "PAIRING_REQUIRED", "reason": "metadata-upgrade", "requestId": request_id,
                        "remediationHint": "Review the refreshed device details, then approve the pending request.",
                        "deviceId": dev.id, "requestedRole": "operator", "requestedScopes": SCOPES,
                        "approvedRoles": ["operator"], "approvedScopes": SCOPES}}
        assert await c.closed() == (1008, "pairing required: device identity changed and must be re-approved "
                                          f"(requestId: {request_id})")
    async with open_client(gw.url) as c:  # the pinned metadata is unchanged by the refused attempt
        res = await c.connect(auth={"token": gw.token}, scopes=SCOPES, client=desktop,
                              device=dev.block(c.challenge["payload"]["nonce"], token=gw.token, client=desktop))
        assert res["ok"], res
