#!/usr/bin/env bash
# Host CPU seconds over a measured window, per capture path and workload, on a private Xvfb:
#   still   — a still desktop (an xterm with text), one viewer connected
#   scroll  — a terminal scrolling ~40 lines/s
#   video   — full-screen motion (ffmpeg testsrc2 into an X window, when ffplay is there)
# Usage: simulations/scripts/host_cpu.sh [BIN_DIR] [WIDTHxHEIGHT] [SECONDS]
# Prints one line per run: path, workload, host CPU-s, viewer fps and kbit/s.
set -euo pipefail
BIN=${1:-target/release}
SIZE=${2:-1920x1080}
SECS=${3:-10}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

cpu_of() { # utime+stime of a pid in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}

run() { # path workload
  local path=$1 work=$2 n=$((600 + RANDOM % 300))
  Xvfb ":$n" -screen 0 "${SIZE}x24" -nolisten tcp -noreset >/dev/null 2>&1 &
  local xpid=$!; PIDS+=("$xpid"); sleep 1
  export DISPLAY=":$n"
  local wpid=""
  case $work in
    still) xterm -geometry 100x40+0+0 -e sh -c 'ls -l /usr/bin | head -40; sleep 600' & wpid=$! ;;
    scroll) xterm -geometry 100x40+0+0 -e sh -c 'while :; do ls -l /usr/bin; done | while read -r l; do echo "$l"; sleep 0.025; done' & wpid=$! ;;
    video)
      if ! command -v ffplay >/dev/null; then echo "$path video: n/a (ffplay not installed)"; kill "$xpid"; return; fi
      ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=${SIZE}:rate=30" -t 20 -c:v libx264 -preset ultrafast -threads 1 "$TMP/clip.mp4"
      ffplay -loglevel error -threads 1 -fs -loop 0 -an "$TMP/clip.mp4" & wpid=$! ;;
  esac
  PIDS+=("$wpid"); sleep 1
  local H="$TMP/h$n" V="$TMP/v$n"
  mkdir -p "$H"
  local vp; vp=$("$BIN/portico" --data "$V" id | sed -n 's/^PeerId: *//p')
  printf '[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n' "$vp" > "$H/host.toml"
  "$BIN/portico" --data "$H" host --config "$H/host.toml" --listen 127.0.0.1:0 --no-mdns \
    --console off --capture "$path" > "$H/out" 2>&1 &
  local hpid=$!; PIDS+=("$hpid")
  for _ in $(seq 50); do grep -q "^Listening:.*/tcp/" "$H/out" && break; sleep 0.1; done
  local addr; addr=$(grep -m1 "^Listening:.*/tcp/" "$H/out" | sed 's/^Listening: *//')
  "$BIN/portico" --data "$V" connect "$addr" --headless --duration $((SECS + 3)) --stats "$V/s.json" >/dev/null 2>&1 &
  local vpid=$!
  sleep 2
  local c0; c0=$(cpu_of "$hpid")
  sleep "$SECS"
  local c1; c1=$(cpu_of "$hpid")
  wait "$vpid" || true
  local fps kbps
  fps=$(python3 -c "import json;print(round(json.load(open('$V/s.json'))['fps'],1))")
  kbps=$(python3 -c "import json;print(round(json.load(open('$V/s.json'))['kbps']))")
  printf '%-5s %-6s host CPU %5.2f s over %s s   viewer %5s fps %6s kbit/s\n' \
    "$path" "$work" "$(echo "$c1 - $c0" | bc -l)" "$SECS" "$fps" "$kbps"
  kill "$hpid" "$wpid" "$xpid" 2>/dev/null || true
  wait "$hpid" "$wpid" "$xpid" 2>/dev/null || true
}

echo "host CPU at $SIZE, $SECS s per run ($BIN)"
for work in still scroll video; do
  for path in x11 xcap; do run "$path" "$work"; done
done
