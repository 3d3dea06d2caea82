#!/usr/bin/env bash
# The Portico demo on one machine, with what is implemented so far:
# a fresh portico-signal server, an account, a sign-in from the viewer CLI, the node tree.
# (Grows into server + host + viewer as the remote-desktop path lands.)
set -euo pipefail
BIN=${BIN:-target/debug}
DEMO=${DEMO_DATA:-target/demo}
PORT=${DEMO_PORT:-15655}
rm -rf "$DEMO"
mkdir -p "$DEMO"
SERVER="$DEMO/server"
VIEWER="$DEMO/viewer"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "This machine's identity (portico id)"
"$BIN/portico" --data "$VIEWER" id

step "Start a signalling/authorization server on 127.0.0.1:$PORT"
"$BIN/portico-signal" --data "$SERVER" serve --listen "127.0.0.1:$PORT" --name "demo-server" > "$DEMO/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -S "$SERVER/admin.sock" ] && break; sleep 0.1; done
[ -S "$SERVER/admin.sock" ] || { echo "server did not start:"; cat "$DEMO/server.log"; exit 1; }
sed -n '1,5p' "$DEMO/server.log" | grep -v INFO || true

step "Administer it while it runs: a group, a user, a folder, visitor sharing"
"$BIN/portico-signal" --data "$SERVER" group add Support
echo "demo-password" | "$BIN/portico-signal" --data "$SERVER" user add alice --password-stdin
"$BIN/portico-signal" --data "$SERVER" group add-member Support alice
"$BIN/portico-signal" --data "$SERVER" node mkdir /Office/Floor1
"$BIN/portico-signal" --data "$SERVER" node set /Office --allow-visitors on
"$BIN/portico-signal" --data "$SERVER" settings set visitor-sharing on

step "Sign in from the viewer (the server key is pinned on first contact)"
echo "demo-password" | "$BIN/portico" --data "$VIEWER" login --server "127.0.0.1:$PORT" --user alice --password-stdin
"$BIN/portico" --data "$VIEWER" whoami
"$BIN/portico" --data "$VIEWER" nodes

step "The audit log, verified"
"$BIN/portico-signal" --data "$SERVER" audit --verify

step "Done"
echo "Server data: $SERVER  Viewer data: $VIEWER"
