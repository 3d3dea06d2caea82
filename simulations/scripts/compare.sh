#!/usr/bin/env bash
# Portico beside x11vnc and TigerVNC (X0tigervnc, its scraping server) on the same Xvfb workloads, each through a
# byte-counting TCP proxy on loopback, the VNC servers watched by the real TigerVNC viewer on
# a second Xvfb, Portico by its headless viewer. Per run: bytes server -> viewer, server CPU
# seconds (from /proc) over the window, and for Portico the viewer's fps.
#   workloads: idle (an xterm with text), scroll (a terminal scrolling ~40 lines/s),
#              video (ffplay of a pre-encoded H.264 clip, -threads 1, full screen)
# Usage: simulations/scripts/compare.sh [BIN_DIR] [WIDTHxHEIGHT] [SECONDS]   (make compare)
set -euo pipefail
BIN=${1:-target/release}
SIZE=${2:-1280x720}
SECS=${3:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
for tool in Xvfb x11vnc X0tigervnc xtigervncviewer xterm ffmpeg ffplay python3; do
  command -v "$tool" >/dev/null || { echo "compare: $tool is missing; run \`make compare\` (it installs the packages)"; exit 1; }
done

cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=${SIZE}:rate=30" -t 30 -c:v libx264 -preset ultrafast \
  -threads 1 "$TMP/clip.mp4"

workload() { # kind -> pid
  case $1 in
    idle) xterm -geometry 100x40+0+0 -e sh -c 'ls -l /usr/bin | head -40; sleep 600' >/dev/null 2>&1 & ;;
    scroll) xterm -geometry 100x40+0+0 -e sh -c 'while :; do ls -l /usr/bin; done | while read -r l; do echo "$l"; sleep 0.025; done' >/dev/null 2>&1 & ;;
    video) ffplay -loglevel error -threads 1 -fs -loop 0 -an "$TMP/clip.mp4" >/dev/null 2>&1 & ;;
  esac
  echo $!
}

run() { # system workload
  local sys=$1 work=$2 n=$((500 + RANDOM % 200)) v=$((700 + RANDOM % 200))
  Xvfb ":$n" -screen 0 "${SIZE}x24" -nolisten tcp -noreset >/dev/null 2>&1 & local x1=$!
  Xvfb ":$v" -screen 0 "${SIZE}x24" -nolisten tcp -noreset >/dev/null 2>&1 & local x2=$!
  PIDS+=("$x1" "$x2")
  sleep 1
  local wpid; wpid=$(DISPLAY=":$n" workload "$work"); PIDS+=("$wpid")
  sleep 1
  local port proxy spid vpid
  port=$(free_port); proxy=$(free_port)
  case $sys in
    x11vnc) x11vnc -display ":$n" -rfbport "$port" -nopw -forever -shared -quiet >/dev/null 2>&1 & spid=$! ;;
    tigervnc) X0tigervnc -display ":$n" -rfbport "$port" -SecurityTypes None >/dev/null 2>&1 & spid=$! ;;
    portico)
      local H="$TMP/h$n" V="$TMP/v$n" vp
      mkdir -p "$H"
      vp=$("$BIN/portico" --data "$V" id | sed -n 's/^PeerId: *//p')
      printf '[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n' "$vp" > "$H/host.toml"
      DISPLAY=":$n" "$BIN/portico" --data "$H" host --config "$H/host.toml" --listen "127.0.0.1:$port" \
        --no-mdns --console off > "$H/out" 2>&1 & spid=$!
      ;;
  esac
  PIDS+=("$spid"); sleep 1.5
  python3 "$HERE/count_proxy.py" "$proxy" "$port" "$TMP/bytes.json" 2>/dev/null & local ppid=$!
  PIDS+=("$ppid"); sleep 0.5
  case $sys in
    portico)
      local peer; peer=$(sed -n 's|^PeerId: *||p' "$H/out")
      "$BIN/portico" --data "$V" connect "/ip4/127.0.0.1/tcp/$proxy/p2p/$peer" --headless \
        --duration $((SECS + 2)) --stats "$V/s.json" >/dev/null 2>&1 & vpid=$! ;;
    *) DISPLAY=":$v" xtigervncviewer -Shared -RemoteResize=0 "127.0.0.1::$proxy" >/dev/null 2>&1 & vpid=$! ;;
  esac
  sleep 2
  local c0 b0; c0=$(cpu_of "$spid"); b0=$(python3 -c "import json;print(json.load(open('$TMP/bytes.json'))['to_client'])")
  sleep "$SECS"
  local c1 b1; c1=$(cpu_of "$spid"); b1=$(python3 -c "import json;print(json.load(open('$TMP/bytes.json'))['to_client'])")
  kill "$ppid"; wait "$ppid" 2>/dev/null || true
  local bytes=$((b1 - b0))
  local extra=""
  if [ "$sys" = portico ]; then
    wait "$vpid" 2>/dev/null || true
    extra=$(python3 -c "import json;d=json.load(open('$V/s.json'));print(f\"{d['fps']:.0f} fps\")" 2>/dev/null || echo "-")
  fi
  printf '| %-7s | %-8s | %10s | %6.2f | %s |\n' "$work" "$sys" "$(numfmt --to=iec "$bytes")B" \
    "$(echo "$c1 - $c0" | bc -l)" "$extra"
  kill "$vpid" "$spid" "$wpid" 2>/dev/null || true
  sleep 0.5
  kill "$x1" "$x2" 2>/dev/null || true
  wait "$x1" "$x2" 2>/dev/null || true
}

echo "compare at $SIZE, $SECS s per run ($BIN), $(date -u +%F)"
echo "| workload | system | bytes to viewer in the window | server CPU-s in the window | viewer |"
echo "|---|---|---:|---:|---|"
for work in idle scroll video; do
  for sys in x11vnc tigervnc portico; do run "$sys" "$work"; done
done
