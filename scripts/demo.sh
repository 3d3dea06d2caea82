#!/usr/bin/env bash
# The Portico demo on one machine: a fresh portico-signal server, a host sharing the display
# (a fresh Xvfb with something on it when there is none), and a viewer connecting by
# Internet-ID through the server, headless: it prints path, fps and kbit/s and writes a
# snapshot PNG. Also: administration while the server runs, sign-in, the node tree, the audit.
set -euo pipefail
BIN=${BIN:-target/debug}
DEMO=${DEMO_DATA:-target/demo}
PORT=${DEMO_PORT:-15655}
rm -rf "$DEMO"
mkdir -p "$DEMO"
SERVER="$DEMO/server"
VIEWER="$DEMO/viewer"
HOSTDATA="$DEMO/host"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "This machine's identity (portico id)"
"$BIN/portico" --data "$VIEWER" id

step "Start a signalling/authorization server on 127.0.0.1:$PORT"
"$BIN/portico-signal" --data "$SERVER" serve --listen "127.0.0.1:$PORT" --name "demo-server" > "$DEMO/server.log" 2>&1 &
PIDS+=($!)
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

step "A display to share"
USER_DISPLAY="${DISPLAY:-}"
if [ -z "${DISPLAY:-}" ]; then
  N=$((90 + RANDOM % 100))
  Xvfb ":$N" -screen 0 1280x720x24 -noreset -nolisten tcp > /dev/null 2>&1 &
  PIDS+=($!)
  export DISPLAY=":$N"
  for _ in $(seq 1 50); do xdpyinfo > /dev/null 2>&1 && break; sleep 0.1; done
  xsetroot -solid '#2a6f97'
  xmessage -geometry +120+120 -fn fixed "Hello from Portico: this screen is shared from a host to a viewer." > /dev/null 2>&1 &
  PIDS+=($!)
  sleep 0.5
  echo "started Xvfb on $DISPLAY with a message window"
else
  echo "sharing the existing display $DISPLAY"
fi

step "Enroll a host: the server admits only hosts an admin allowed (a one-use token)"
TOKEN=$("$BIN/portico-signal" --data "$SERVER" node enroll /Office --uses 1 --hours 1 | grep '^enroll-')
echo "enrollment token for /Office: ${TOKEN:0:14}…"

step "Start a host registered at the server as /Office/desk-1, trusting this viewer's key"
VIEWER_PEER=$("$BIN/portico" --data "$VIEWER" id | awk '/PeerId/{print $2}')
mkdir -p "$HOSTDATA"
cat > "$HOSTDATA/host.toml" <<TOML
no_mdns = true
[[acl]]
principal = "peer:$VIEWER_PEER"
permissions = ["view", "control"]
TOML
"$BIN/portico" --data "$HOSTDATA" host --config "$HOSTDATA/host.toml" --listen 127.0.0.1:0 \
  --server "127.0.0.1:$PORT" --name /Office/desk-1 --enroll "$TOKEN" > "$DEMO/host.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "^Internet-ID:" "$DEMO/host.log" && break; sleep 0.1; done
grep -v "INFO\|WARN" "$DEMO/host.log" || true
ID=$(sed -n 's/^Internet-ID: \([0-9 ]*\) (.*/\1/p' "$DEMO/host.log")
[ -n "$ID" ] || { echo "the host did not register:"; cat "$DEMO/host.log"; exit 1; }

step "Connect by Internet-ID $ID (headless first: snapshot and per-frame stats)"
"$BIN/portico" --data "$VIEWER" connect "$ID" --as peer --headless --duration 3 \
  --snapshot "$DEMO/snapshot.png" --stats "$DEMO/stats.json"
echo "per-frame stats: $DEMO/stats.json"
if [ -n "$USER_DISPLAY" ]; then
  step "The same session in a window (close it to finish)"
  DISPLAY="$USER_DISPLAY" "$BIN/portico" --data "$VIEWER" connect "$ID" --as peer || true
fi
"$BIN/portico" --data "$VIEWER" nodes

step "The audit log, verified"
"$BIN/portico-signal" --data "$SERVER" audit --verify

step "Done"
echo "Server data: $SERVER  Viewer data: $VIEWER"
