#!/usr/bin/env bash
# NAT matrix: Portico over a simulated internet of network namespaces.
#
#   simulations/netns/nat_matrix.sh            (as root; after `cargo build`)
#
# For each pair of NAT types (easy = port-preserving masquerade, sym = random ports, i.e.
# endpoint-dependent mapping) it builds:
#
#   ns wan  : a bridge, the "internet" (no IP)
#   ns pub  : 203.0.113.10   portico-signal (rendezvous + relay)
#   ns nat1 : 203.0.113.1 / 10.1.0.1   home router (nftables masquerade, drops unsolicited)
#   ns nat2 : 203.0.113.2 / 10.2.0.1
#   ns h1   : 10.1.0.10 behind nat1   the host (sharing an Xvfb)
#   ns lan1 : 10.1.0.21 behind nat1   a viewer on the host's LAN
#   ns h2   : 10.2.0.10 behind nat2   a viewer elsewhere on the internet
#
# and connects both viewers to the host by Internet-ID, printing the path each got (direct
# or relayed), whether DCUtR later established a direct connection, fps and kbit/s.
# Nothing is attached to the root namespace; everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/debug}
P=${NS_PREFIX:-ptn-}
WORK=$(mktemp -d)
PIDS=()

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
  for n in wan pub nat1 nat2 h1 lan1 h2; do
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

up() {   # up MODE1 MODE2
  down
  mkns wan; mkbridge wan internet
  mkns pub; veth pub eth0 wan pub; ip -n "${P}wan" link set pub master internet
  ip -n "${P}pub" addr add 203.0.113.10/24 dev eth0
  router 1 "$1"; router 2 "$2"
  machine h1 1 10.1.0.10; machine lan1 1 10.1.0.21; machine h2 2 10.2.0.10
}

field() { sed -n "s/.*\"$2\": \"\\{0,1\\}\\([^\",]*\\)\"\\{0,1\\},\\{0,1\\}\$/\\1/p" "$1" | head -1; }

# One display for the host, reachable from every namespace (X11 socket in /tmp).
DISP=":$((300 + RANDOM % 200))"
Xvfb "$DISP" -screen 0 1280x720x24 -noreset -nolisten tcp > /dev/null 2>&1 & XPID=$!
sleep 1
DISPLAY=$DISP xsetroot -solid '#3a6ea5'
# Keep the screen changing so the viewers' frame rates mean something.
( c=0; while sleep 0.1; do c=$(( (c + 1) % 2 )); DISPLAY=$DISP xsetroot -solid "$([ $c = 0 ] && echo '#3a6ea5' || echo '#a56e3a')" 2>/dev/null || exit 0; done ) &
XPID="$XPID $!"
LANV="$WORK/lan-viewer"; NETV="$WORK/net-viewer"
LANP=$("$BIN/portico" --data "$LANV" id | awk '/PeerId/{print $2}')
NETP=$("$BIN/portico" --data "$NETV" id | awk '/PeerId/{print $2}')

printf '%-10s %-22s %-40s\n' "NATs" "LAN viewer" "internet viewer"
IFS=, read -ra MATRIX <<< "${MODES:-easy easy,easy sym,sym easy,sym sym}"
for modes in "${MATRIX[@]}"; do
  set -- $modes
  up "$1" "$2"
  S="$WORK/server-$1-$2"; H="$WORK/host-$1-$2"
  mkdir -p "$H"
  printf '[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n' "$LANP" "$NETP" > "$H/host.toml"
  nsx pub "$BIN/portico-signal" --data "$S" serve --listen 203.0.113.10:5655 > "$S.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 50); do [ -S "$S/admin.sock" ] && break; sleep 0.1; done
  TOKEN=$("$BIN/portico-signal" --data "$S" node enroll /nat | grep '^enroll-')
  nsx h1 env DISPLAY="$DISP" "$BIN/portico" --data "$H" host --config "$H/host.toml" --server 203.0.113.10:5655 \
    --name "/nat/$1-$2" --enroll "$TOKEN" --listen 0.0.0.0:5650 --no-mdns --console off > "$H.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do grep -q '^Relay:' "$H.log" && break; sleep 0.1; done
  ID=$(sed -n 's/^Internet-ID: \([0-9 ]*\) (.*/\1/p' "$H.log")
  if [ -z "$ID" ]; then echo "$1/$2: the host did not register"; cat "$H.log"; continue; fi
  row=()
  for v in lan1 h2; do
    dir=$LANV; [ "$v" = h2 ] && dir=$NETV
    st="$WORK/$v-$1-$2.json"
    rm -f "$dir/known_hosts.toml" "$dir/servers.toml"
    if nsx "$v" "$BIN/portico" --data "$dir" connect "$ID" --server 203.0.113.10:5655 --as peer --headless \
        --duration 6 --stats "$st" > "$WORK/$v.out" 2>&1; then
      up_ms=$(field "$st" direct_upgrade_ms)
      extra=""; [ -n "$up_ms" ] && [ "$up_ms" != null ] && extra=", DCUtR direct after ${up_ms%.*} ms"
      row+=("$(field "$st" path) $(printf '%.0f' "$(field "$st" fps)")fps $(printf '%.0f' "$(field "$st" kbps)")kb/s$extra")
    else
      row+=("failed: $(tail -1 "$WORK/$v.out")")
    fi
  done
  printf '%-10s %-22s %-40s\n' "$1/$2" "${row[0]}" "${row[1]}"
done
