#!/usr/bin/env bash
# The NAT matrix: Portico over a simulated internet of network namespaces, with its outcomes
# asserted. Prints one row per case and exits non-zero if any case fails.
#
#   simulations/netns/nat_matrix.sh            (as root; after `cargo build`)
#   MODES="easy easy" KEEP=1 simulations/netns/nat_matrix.sh   (one NAT pair, keep the logs)
#
# For each pair of NAT types (easy = port-preserving masquerade, sym = random ports, i.e.
# endpoint-dependent mapping) it builds:
#
#   ns wan  : a bridge, the "internet" (no IP)
#   ns pub  : 203.0.113.10   portico-signal (rendezvous + relay)
#   ns pubh : 203.0.113.20   a host with a public address
#   ns nat1 : 203.0.113.1 / 10.1.0.1   home router (nftables masquerade, drops unsolicited)
#   ns nat2 : 203.0.113.2 / 10.2.0.1
#   ns h1   : 10.1.0.10 behind nat1   the host (sharing an Xvfb)
#   ns lan1 : 10.1.0.21 behind nat1   a viewer on the host's LAN
#   ns h2   : 10.2.0.10 behind nat2   a viewer elsewhere on the internet
#
# Cases: the internet viewer by Internet-ID for every pair (easy/easy must end direct, the
# others must connect); with the first pair also the LAN viewer by IP and by discovery
# (`portico discover`, `connect NAME`: both direct), a host with a public address, the
# server killed after the session went direct (the session must go on), and the server
# restarted (the host must be back under its Internet-ID within 10 s).
# Nothing is attached to the root namespace; everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/debug}
P=${NS_PREFIX:-ptn$$-}
WORK=$(mktemp -d)
PIDS=()
FAILED=0
ROWS=()

for tool in ip nft Xvfb xsetroot python3; do
  command -v "$tool" >/dev/null || { echo "nat_matrix: '$tool' is missing (make deps installs it)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "nat_matrix: needs root (network namespaces)" >&2; exit 2; }
for b in portico portico-signal; do
  [ -x "$BIN/$b" ] || { echo "nat_matrix: $BIN/$b is missing: cargo build first" >&2; exit 2; }
done

nsx() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
mkns() { ip netns add "$P$1"; ip -n "$P$1" link set lo up; nsx "$1" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0; }
veth() { ip link add "$2" netns "$P$1" type veth peer name "$4" netns "$P$3"; ip -n "$P$1" link set "$2" up; ip -n "$P$3" link set "$4" up; }
mkbridge() {
  ip -n "$P$1" link add "$2" type bridge; ip -n "$P$1" link set "$2" up
  # Bridged frames must not go through this namespace's netfilter.
  nsx "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
}

down() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  PIDS=()
  for n in wan pub pubh nat1 nat2 h1 lan1 h2; do
    if ip netns list | awk '{print $1}' | grep -qx "$P$n"; then
      for pid in $(ip netns pids "$P$n" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      ip netns del "$P$n"
    fi
  done
}
XPID=""
trap 'down; [ -n "$XPID" ] && kill $XPID 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT

router() {   # router N MODE
  local n=nat$1 flag=""; [ "$2" = sym ] && flag=random
  mkns "$n"; veth "$n" wan0 wan "$n"; ip -n "${P}wan" link set "$n" master internet
  ip -n "$P$n" addr add "203.0.113.$1/24" dev wan0
  mkbridge "$n" lan; ip -n "$P$n" addr add "10.$1.0.1/24" dev lan
  nsx "$n" sysctl -qw net.ipv4.ip_forward=1
  nsx "$n" nft -f - <<NFT
table ip home {
  chain nat_out { type nat hook postrouting priority srcnat; oifname "wan0" masquerade $flag; }
  chain from_wan { type filter hook forward priority filter; iifname "wan0" ct state established,related accept; iifname "wan0" drop; }
  chain to_router { type filter hook input priority filter; iifname "wan0" ct state established,related accept; iifname "wan0" drop; }
}
NFT
}

machine() {  # machine NAME ROUTER-N IP
  mkns "$1"; veth "$1" eth0 "nat$2" "$1"; ip -n "${P}nat$2" link set "$1" master lan
  ip -n "$P$1" addr add "$3/24" dev eth0; ip -n "$P$1" route add default via "10.$2.0.1"
}

public() {   # public NAME IP: a machine on the internet itself
  mkns "$1"; veth "$1" eth0 wan "$1"; ip -n "${P}wan" link set "$1" master internet
  ip -n "$P$1" addr add "$2/24" dev eth0
}

up() {   # up MODE1 MODE2
  down
  mkns wan; mkbridge wan internet
  public pub 203.0.113.10; public pubh 203.0.113.20
  router 1 "$1"; router 2 "$2"
  machine h1 1 10.1.0.10; machine lan1 1 10.1.0.21; machine h2 2 10.2.0.10
}

# One display for the hosts, reachable from every namespace (X11 socket in /tmp).
for _ in $(seq 1 50); do
  n=$((300 + RANDOM % 3000)); [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] || break
done
DISP=":$n"
Xvfb "$DISP" -screen 0 1280x720x24 -noreset -nolisten tcp > /dev/null 2>&1 & XPID=$!
for _ in $(seq 1 50); do DISPLAY=$DISP xsetroot -solid '#3a6ea5' 2>/dev/null && break; sleep 0.1; done
# The screen changes ten times a second, so frame rates and gaps mean something.
( c=0; while sleep 0.1; do c=$(( (c + 1) % 2 )); DISPLAY=$DISP xsetroot -solid "$([ $c = 0 ] && echo '#3a6ea5' || echo '#a56e3a')" 2>/dev/null || exit 0; done ) &
XPID="$XPID $!"
LANV="$WORK/lan-viewer"; NETV="$WORK/net-viewer"
LANP=$("$BIN/portico" --data "$LANV" id | awk '/PeerId/{print $2}')
NETP=$("$BIN/portico" --data "$NETV" id | awk '/PeerId/{print $2}')
ACL=$(printf '[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n' "$LANP" "$NETP")

# figures STATS.json -> "first_frame_ms|to_direct_ms|relay_bytes|fps|gap_ms|path|seconds|frames"
figures() {
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
at = [f["at_ms"] for f in s.get("frame_stats", [])]
sw = s.get("switched_at_ms")
gap = "-"
if sw is not None and at:
    # The longest wait for a picture across the switch (from the last picture before it
    # to the first after it), when pictures were flowing on both sides of it.
    before = [a for a in at if a <= sw]
    after = [a for a in at if a > sw]
    if before and after:
        gap = "%.0f" % (after[0] - before[-1])
def num(v, fmt="%.0f"):
    return "-" if v is None else fmt % v
print("|".join([
    num(s.get("connect_to_first_frame_ms")), num(s.get("switched_to_direct_ms")),
    str(s.get("relay_bytes", 0)), num(s.get("fps")), gap, s.get("path", "?"),
    num(s.get("seconds"), "%.1f"), str(s.get("frames", 0)),
]))
PY
}

# row CASE OUTCOME(ok|fail) FIGURES NOTE
row() {
  local ok=PASS; [ "$2" = ok ] || { ok=FAIL; FAILED=1; }
  local ff td rb fps gap path secs frames
  IFS='|' read -r ff td rb fps gap path secs frames <<< "${3:-|||||||}"
  ROWS+=("$(printf '%-30s %-6s %-8s %8s %8s %9s %5s %7s  %s' "$1" "$ok" "${path:--}" "${ff:--}" "${td:--}" "${rb:--}" "${fps:--}" "${gap:--}" "$4")")
}

# view NS DATA TARGET STATS [ARGS…]: a headless viewer; exit status of the viewer
view() {
  local ns=$1 dir=$2 target=$3 st=$4; shift 4
  nsx "$ns" "$BIN/portico" --data "$dir" connect "$target" --as peer --headless --stats "$st" "$@" \
    > "$st.out" 2>&1
}

start_server() {  # start_server DIR
  nsx pub "$BIN/portico-signal" --data "$1" serve --listen 203.0.113.10:5655 >> "$1.log" 2>&1 & SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 50); do [ -S "$1/admin.sock" ] && break; sleep 0.1; done
}

start_host() {  # start_host NS DIR NAME TOKEN: prints the Internet-ID
  local ns=$1 dir=$2
  mkdir -p "$dir"; echo "$ACL" > "$dir/host.toml"
  nsx "$ns" env DISPLAY="$DISP" "$BIN/portico" --data "$dir" host --config "$dir/host.toml" \
    --server 203.0.113.10:5655 --name "$3" --enroll "$4" --listen 0.0.0.0:5650 --console off \
    > "$dir.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do grep -qs '^Relay:' "$dir.log" && break; sleep 0.1; done
  sed -n 's/^Internet-ID: \([0-9 ]*\) (.*/\1/p' "$dir.log"
}

IFS=, read -ra MATRIX <<< "${MODES:-easy easy,easy sym,sym easy,sym sym}"
first=1
for modes in "${MATRIX[@]}"; do
  set -- $modes
  pair="$1/$2"
  up "$1" "$2"
  S="$WORK/server-$1-$2"; H="$WORK/host-$1-$2"
  start_server "$S"
  TOKEN=$("$BIN/portico-signal" --data "$S" node enroll /nat --uses 2 | grep '^enroll-')
  ID=$(start_host h1 "$H" "/nat/$1-$2" "$TOKEN")
  if [ -z "$ID" ]; then row "$pair: host registers" fail "" "$(tail -1 "$H.log")"; continue; fi
  # A new server (and new hosts) per pair: forget the previous pair's pinned keys.
  rm -f "$NETV/known_hosts.toml" "$LANV/known_hosts.toml" "$NETV/servers.toml" "$LANV/servers.toml"

  # The internet viewer by Internet-ID.
  st="$WORK/id-$1-$2.json"
  if [ "$pair" = easy/easy ] && [ -n "$first" ]; then
    # Long enough to kill the server under it once the session went direct.
    view h2 "$NETV" "$ID" "$st" --server 203.0.113.10:5655 --duration 10 & VPID=$!
    for _ in $(seq 1 40); do grep -q 'moved off the relay\|path direct' "$st.out" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    if wait "$VPID"; then vs=ok; else vs=fail; fi
    f=$(figures "$st" 2>/dev/null || true)
    IFS='|' read -r _ td _ _ _ path secs frames <<< "$f"
    if [ "$vs" = ok ] && [ "$path" = direct ] && [ "$td" != - ]; then o=ok; else o=fail; fi
    row "$pair: internet, by ID" "$o" "$f" "must end direct"
    # The session went on while the server was down.
    if [ "$vs" = ok ] && python3 -c "import sys; sys.exit(0 if float('$secs') > 9 and int('$frames') >= 40 else 1)"; then o=ok; else o=fail; fi
    row "$pair: server killed after direct" "$o" "$f" "$frames pictures in ${secs} s"

    # The server comes back: the host must be findable again within 10 s.
    start_server "$S"
    back=$(date +%s.%N); o=fail; took="-"
    while python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $back < 10 else 1)"; do
      # Relayed: the host must be registered again *and* hold a new relay reservation.
      if view h2 "$NETV" "$ID" "$WORK/back.json" --server 203.0.113.10:5655 --relay-only --frames 1; then
        o=ok; took=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $back))"); break
      fi
      sleep 0.3
    done
    row "$pair: server restarted" "$o" "" "host back under its ID after ${took} s"

    # The LAN viewer by IP and by discovery.
    st="$WORK/lan-ip.json"
    if view lan1 "$LANV" 10.1.0.10:5650 "$st" --duration 3; then f=$(figures "$st"); else f=""; fi
    IFS='|' read -r _ _ _ _ _ path _ _ <<< "$f"
    [ "$path" = direct ] && o=ok || o=fail
    row "LAN, by IP" "$o" "$f" "must be direct"
    found=$(nsx lan1 "$BIN/portico" --data "$LANV" discover --wait 3 2>&1 || true)
    if grep -q "^$1-$2"$'\t' <<< "$found"; then o=ok; else o=fail; fi
    row "LAN, discover" "$o" "" "$(grep -c $'\t' <<< "$found") host(s) in 3 s"
    st="$WORK/lan-name.json"
    if view lan1 "$LANV" "$1-$2" "$st" --duration 3; then f=$(figures "$st"); else f=""; fi
    IFS='|' read -r _ _ _ _ _ path _ _ <<< "$f"
    [ "$path" = direct ] && o=ok || o=fail
    row "LAN, connect NAME" "$o" "$f" "must be direct"

    # A host with a public address, from behind a NAT.
    PH="$WORK/host-public"
    PUBID=$(start_host pubh "$PH" "/nat/public" "$TOKEN")
    st="$WORK/public.json"
    if [ -n "$PUBID" ] && view h2 "$NETV" "$PUBID" "$st" --server 203.0.113.10:5655 --duration 3; then f=$(figures "$st"); else f=""; fi
    IFS='|' read -r _ _ _ _ _ path _ _ <<< "$f"
    [ "$path" = direct ] && o=ok || o=fail
    row "public host, by ID" "$o" "$f" "must be direct"
    first=""
  else
    if view h2 "$NETV" "$ID" "$st" --server 203.0.113.10:5655 --duration 4; then o=ok; f=$(figures "$st"); else o=fail; f=""; fi
    IFS='|' read -r _ td _ _ _ path _ _ <<< "$f"
    note="must connect"
    if [ "$pair" = easy/easy ]; then
      note="must end direct"; { [ "$path" = direct ] && [ "$td" != - ]; } || o=fail
    fi
    row "$pair: internet, by ID" "$o" "$f" "$note"
  fi
done

printf '%-30s %-6s %-8s %8s %8s %9s %5s %7s  %s\n' case result path "1st ms" "→dir ms" "relay B" fps "gap ms" note
for r in "${ROWS[@]}"; do echo "$r"; done
exit $FAILED
