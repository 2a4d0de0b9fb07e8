#!/usr/bin/env python3
"""A shop's backend verifies Anteroom's passes with a JWT library the project
does not use itself (PyJWT) and nothing but the published JWKS.

Starts the service binary (embedded mode, a fresh SQLite database) twice: with
the key derived from the secret (EdDSA) and with an EC P-256 key given in
ANTEROOM_SIGNING_KEY (ES256). Each time it joins a line, waits for the pass,
and checks with PyJWT's JWKS client that the pass verifies for its event and
issuer, and that an altered, misdirected, foreign or ended pass does not.

Usage: tests/jwt/verify_pass.py [path of the anteroom binary]
(infra/jwt-check.sh installs PyJWT and runs it.)
"""

import calendar
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import urlsafe_b64decode, urlsafe_b64encode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ADMIN_TOKEN = "jwt-check-" + secrets.token_hex(8)
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1
    print(f"  ok: {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


class Service:
    """One anteroom process on a free port, in a directory of its own."""

    def __init__(self, binary, workdir, signing_key=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.public_url = f"http://localhost:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("ANTEROOM_") or k in ("REDIS_URL", "AMQP_URL", "DATABASE_URL"))
        }
        env.update(
            ANTEROOM_ADDR=f"127.0.0.1:{self.port}",
            ANTEROOM_PUBLIC_URL=self.public_url,
            ANTEROOM_ADMIN_TOKEN=ADMIN_TOKEN,
            ANTEROOM_DEMO="0",
            DATABASE_URL=f"sqlite://{workdir}/anteroom.db",
            RUST_LOG="warn",
        )
        if signing_key:
            env["ANTEROOM_SIGNING_KEY"] = signing_key
        self.log = open(os.path.join(workdir, "service.log"), "wb")
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited at start; see {self.log.name}")
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the service was not ready within 60 s; see {self.log.name}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()

    def event(self, event_id, pass_seconds=600):
        status, body = request(
            self.base,
            "POST",
            "/api/admin/events",
            {
                "id": event_id,
                "name": "JWT check",
                "venue": "Lab",
                "starts_at": "2030-01-01T19:00:00Z",
                "hold_seconds": 60,
                "max_seats_per_user": 4,
                "admission": {"per_second": 100, "max_active": 100, "pass_seconds": pass_seconds},
                "sections": [{"id": "A", "name": "Floor", "price_cents": 1000, "rows": 2, "seats_per_row": 5}],
            },
            ADMIN_TOKEN,
        )
        assert status == 201, (status, body)

    def admitted(self, event_id):
        """The token id and the status body once the line has admitted a new join."""
        status, joined = request(self.base, "POST", f"/api/events/{event_id}/queue", {})
        assert status in (200, 201), (status, joined)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, polled = request(self.base, "GET", f"/api/queue/{joined['token']}")
            if polled.get("state") == "admitted":
                return joined["token_id"], polled
            time.sleep(0.1)
        raise RuntimeError(f"not admitted within 20 s: {polled}")


def b64(part):
    return urlsafe_b64decode(part + "=" * (-len(part) % 4))


def altered(token, **claims):
    """The token with some claims changed under its original signature."""
    header, payload, signature = token.split(".")
    body = json.loads(b64(payload))
    body.update(claims)
    encoded = urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return ".".join([header, encoded, signature])


def refuses(decode, token, error, what):
    try:
        decode(token)
    except error:
        check(True, what)
        return
    except jwt.PyJWTError as other:
        raise AssertionError(f"{what}: refused, but with {type(other).__name__}: {other}")
    raise AssertionError(f"{what}: it verified")


def verify_with_jwks(service, algorithm):
    print(f"== {algorithm}: a pass verifies with PyJWT and the JWKS alone")
    service.event("gig")
    service.event("other-gig")
    token_id, admitted = service.admitted("gig")
    token = admitted["pass"]
    jwks = jwt.PyJWKClient(service.base + "/.well-known/jwks.json", cache_keys=False)

    def decode(raw, audience="gig"):
        key = jwks.get_signing_key_from_jwt(raw)
        return jwt.decode(
            raw,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=service.public_url,
            options={"require": ["iss", "aud", "sub", "iat", "nbf", "exp"]},
        )

    header = jwt.get_unverified_header(token)
    check(header["alg"] == algorithm and header["typ"] == "JWT", f"the header says {algorithm}, typ JWT")
    claims = decode(token)
    check(claims["sub"] == token_id, "sub is the token id")
    check(claims["aud"] == "gig" and claims["iss"] == service.public_url, "aud is the event, iss the public URL")
    ends = time.strptime(admitted["pass_expires_at"][:19], "%Y-%m-%dT%H:%M:%S")
    check(0 <= claims["exp"] - calendar.timegm(ends) <= 1, "exp is the pass's end, to the second")

    refuses(lambda t: decode(t, audience="other-gig"), token, jwt.InvalidAudienceError, "a pass for another event is refused")
    refuses(decode, altered(token, aud="other-gig"), jwt.InvalidSignatureError, "a pass whose claims were altered is refused")
    foreign_key = (
        ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256" else ed25519.Ed25519PrivateKey.generate()
    )
    forged = jwt.encode(
        {**claims, "exp": claims["exp"] + 3600},
        foreign_key,
        algorithm=algorithm,
        headers={"kid": header["kid"]},
    )
    refuses(decode, forged, jwt.InvalidSignatureError, "a pass signed by another key under the same kid is refused")
    status, _ = request(service.base, "POST", "/api/events/gig/holds", {"seats": ["A-1-1"]}, forged)
    check(status == 401, "the service refuses the forged pass too (401)")
    status, _ = request(service.base, "POST", "/api/events/gig/holds", {"seats": ["A-1-1"]}, token)
    check(status == 201, "the service accepts the real pass as a Bearer credential (201)")

    service.event("short", pass_seconds=1)
    _, short = service.admitted("short")
    time.sleep(2.2)
    refuses(lambda t: decode(t, audience="short"), short["pass"], jwt.ExpiredSignatureError, "an ended pass is refused")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/anteroom"
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for algorithm, signing_key in [("EdDSA", None), ("ES256", p256.decode())]:
        with tempfile.TemporaryDirectory(prefix="anteroom-jwt.") as workdir:
            service = Service(binary, workdir, signing_key)
            try:
                verify_with_jwks(service, algorithm)
            except BaseException:
                service.stop()
                print(open(os.path.join(workdir, "service.log")).read()[-4000:], file=sys.stderr)
                raise
            service.stop()
    print(f"PyJWT {jwt.__version__}: {checks} checks passed")


if __name__ == "__main__":
    main()
