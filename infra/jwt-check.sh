#!/usr/bin/env bash
# A shop's backend verifies passes with PyJWT (a JWT library Anteroom does not
# use) and the JWKS alone: tests/jwt/verify_pass.py, against the service binary
# (default target/debug/anteroom, which the integration suite has built).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

PYJWT_VERSION=2.10.1
bin="${ANTEROOM_BIN:-target/debug/anteroom}"
[ -x "$bin" ] || { say "no service binary at $bin: build it (cargo build) or set ANTEROOM_BIN"; exit 2; }
if ! python3 -c "import jwt, sys; sys.exit(jwt.__version__ != '$PYJWT_VERSION')" 2>/dev/null; then
  say "installing PyJWT $PYJWT_VERSION"
  python3 -m pip install --quiet "pyjwt[crypto]==$PYJWT_VERSION"
fi
python3 tests/jwt/verify_pass.py "$bin"
