#!/usr/bin/env bash
# Cost per viewer: 1, 4 and 16 trusted viewers on one host (private Xvfb, loopback), on a
# scrolling terminal and on full-screen video. Prints, per run: host CPU-s over the window,
# and per viewer the mean pictures/s and kbit/s (from each viewer's --stats JSON).
# Then two monitors side by side (two RandR monitors, a scrolling terminal on each): four
# viewers all on monitor 0, then two on each (each monitor its own capture and encode).
# Usage: simulations/scripts/many_viewers.sh [BIN_DIR] [WIDTHxHEIGHT] [SECONDS] [COUNTS]
# (docs/performance.md, "Many viewers"; `make many-viewers`).
set -euo pipefail
BIN=${1:-target/release}
SIZE=${2:-1280x720}
SECS=${3:-10}
COUNTS=${4:-"1 4 16"}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }

SCROLL='while :; do ls -l /usr/bin; done | while read -r l; do echo "$l"; sleep 0.025; done'

run() { # workload viewers [split: odd viewers watch monitor 1]
  local work=$1 n=$2 split=${3:-0} d=$((700 + RANDOM % 200)) screen=$SIZE
  local w=${SIZE%x*} h=${SIZE#*x}
  [ "$work" = two-monitors ] && screen="$((2 * w))x$h"
  Xvfb ":$d" -screen 0 "${screen}x24" -nolisten tcp -noreset >/dev/null 2>&1 &
  local xpid=$!; PIDS+=("$xpid"); sleep 1
  export DISPLAY=":$d"
  local wpid
  case $work in
    scroll) xterm -geometry 100x40+0+0 -e sh -c "$SCROLL" & wpid=$! ;;
    two-monitors)
      xrandr --setmonitor left "$w/0x$h/0+0+0" none
      xrandr --setmonitor right "$w/0x$h/0+$w+0" none
      xterm -geometry "100x40+$w+0" -e sh -c "$SCROLL" & PIDS+=($!)
      xterm -geometry 100x40+0+0 -e sh -c "$SCROLL" & wpid=$! ;;
    video)
      [ -f "$TMP/clip.mp4" ] || ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=${SIZE}:rate=30" -t 20 \
        -c:v libx264 -preset ultrafast -threads 1 "$TMP/clip.mp4"
      ffplay -loglevel error -threads 1 -fs -loop 0 -an "$TMP/clip.mp4" & wpid=$! ;;
  esac
  PIDS+=("$wpid"); sleep 1
  local H="$TMP/h$d"; mkdir -p "$H"; : > "$H/host.toml"
  for i in $(seq "$n"); do
    local vp; vp=$("$BIN/portico" --data "$TMP/v$i" id | sed -n 's/^PeerId: *//p')
    printf '[[acl]]\nprincipal = "peer:%s"\npermissions = ["view"]\n' "$vp" >> "$H/host.toml"
  done
  "$BIN/portico" --data "$H" host --config "$H/host.toml" --listen 127.0.0.1:0 --no-mdns \
    --console off --no-notifications > "$H/out" 2>&1 &
  local hpid=$!; PIDS+=("$hpid")
  for _ in $(seq 50); do grep -q "^Listening:.*/tcp/" "$H/out" && break; sleep 0.1; done
  local addr; addr=$(grep -m1 "^Listening:.*/tcp/" "$H/out" | sed 's/^Listening: *//')
  local vpids=()
  for i in $(seq "$n"); do
    rm -f "$TMP/v$i/s.json"
    local mon=0; [ "$split" = 1 ] && mon=$((i % 2))
    "$BIN/portico" --data "$TMP/v$i" connect "$addr" --headless --duration $((SECS + 3)) \
      --monitor "$mon" --stats "$TMP/v$i/s.json" >/dev/null 2>&1 & vpids+=($!)
  done
  sleep 2
  local c0; c0=$(cpu_of "$hpid")
  sleep "$SECS"
  local c1; c1=$(cpu_of "$hpid")
  wait "${vpids[@]}" || true
  local label=$work; [ "$work" = two-monitors ] && label="2mon-$([ "$split" = 1 ] && echo split || echo same)"
  python3 - "$TMP" "$n" "$label" "$(echo "$c1 - $c0" | bc -l)" "$SECS" <<'PY'
import json, sys
tmp, n, work, cpu, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
stats = []
for i in range(1, n + 1):
    try:
        stats.append(json.load(open(f"{tmp}/v{i}/s.json")))
    except (OSError, ValueError):
        pass
fps = sum(s["fps"] for s in stats) / max(len(stats), 1)
kbps = sum(s["kbps"] for s in stats) / max(len(stats), 1)
print(f"{work:10} {n:2} viewers ({len(stats)} reported)  host CPU {cpu:5.2f} s over {secs} s"
      f"  ({cpu / n:4.2f} s per viewer)   per viewer {fps:5.1f} pictures/s {kbps:7.0f} kbit/s")
PY
  kill "$hpid" "$wpid" "$xpid" 2>/dev/null || true
  wait "$hpid" "$wpid" "$xpid" 2>/dev/null || true
}

for work in scroll video; do
  if [ "$work" = video ] && ! command -v ffplay >/dev/null; then echo "video: n/a (ffplay not installed)"; continue; fi
  for n in $COUNTS; do run "$work" "$n"; done
done
run two-monitors 4 0
run two-monitors 4 1
