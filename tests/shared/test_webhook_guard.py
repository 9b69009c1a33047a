"""SSRF guard and one delivery attempt, against a real local receiver: refused addresses never
get a connection; signatures verify with an independent HMAC implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from damagelens.webhooks.delivery import attempt, connect
from damagelens.webhooks.guard import WebhookRefused, check_url, resolve_target
from damagelens.webhooks.signing import new_secret
from tests.support.receiver import Receiver


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Written from the Standard Webhooks spec, not from our signing module."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig.split(",", 1) == ["v1", expected] for sig in headers["webhook-signature"].split(" "))


class CountingConnector:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, target, timeout):
        self.calls += 1
        return connect(target, timeout)


def _try(url: str, connector: CountingConnector, allowlist: list[str] | None = None, resolver=None, number: int = 1):
    kwargs = {"resolver": resolver} if resolver else {}
    return attempt(
        url=url,
        body=b"{}",
        secret=new_secret(),
        msg_id="msg_1",
        number=number,
        allow_http=True,
        allowlist=allowlist or [],
        timeout=5,
        connector=connector,
        **kwargs,
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "0.0.0.0", "224.0.0.1"])
def test_non_public_addresses_are_refused_without_connecting(host: str) -> None:
    with Receiver() as receiver:
        connector = CountingConnector()
        port = receiver.server.server_address[1]
        result = _try(f"http://{host}:{port}/hook", connector)
        assert result.refused and result.status_code is None and "public" in result.error
        assert connector.calls == 0 and receiver.connections == 0


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    connector = CountingConnector()
    result = _try("http://hooks.example.test/x", connector, resolver=lambda host, port: ["10.20.30.40"])
    assert result.refused and "10.20.30.40" in result.error and connector.calls == 0
    mixed = _try("http://hooks.example.test/x", connector, resolver=lambda host, port: ["93.184.216.34", "192.168.1.5"])
    assert mixed.refused and connector.calls == 0


def test_every_attempt_resolves_again_dns_rebinding() -> None:
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    first = resolve_target("https://hooks.example.test/x", False, [], lambda host, port: next(answers))
    assert str(first.address) == "93.184.216.34"
    with pytest.raises(WebhookRefused):
        resolve_target("https://hooks.example.test/x", False, [], lambda host, port: next(answers))


def test_scheme_rules() -> None:
    with pytest.raises(WebhookRefused, match="https"):
        check_url("http://hooks.example.test/", allow_http=False)
    with pytest.raises(WebhookRefused):
        check_url("ftp://hooks.example.test/", allow_http=True)
    with pytest.raises(WebhookRefused):
        check_url("https://user:pw@hooks.example.test/", allow_http=True)
    assert check_url("https://hooks.example.test/", allow_http=False) == ("https", "hooks.example.test", 443)


def test_allowlisted_receiver_gets_a_signed_post_and_redirects_are_not_followed() -> None:
    secret = new_secret()
    with Receiver(answers=[200, 302]) as receiver:
        connector = CountingConnector()
        body = json.dumps({"type": "job.succeeded", "data": {"id": "j1"}}).encode()
        ok = attempt(
            url=receiver.url, body=body, secret=secret, msg_id="msg_j1", number=1, allow_http=True,
            allowlist=["127.0.0.1/32"], timeout=5, connector=connector,
        )  # fmt: skip
        assert ok.status_code == 200 and ok.error is None and not ok.refused
        got = receiver.requests[0]
        assert got.path == "/hook" and got.body == body and got.headers["webhook-id"] == "msg_j1"
        assert verify_standard_webhook(secret, got.headers, got.body)
        assert not verify_standard_webhook(new_secret(), got.headers, got.body)
        redirected = _try(receiver.url, connector, allowlist=["127.0.0.1"], number=2)
        assert redirected.status_code == 302 and "redirect" in redirected.error
        assert len(receiver.requests) == 2
