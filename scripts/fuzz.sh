#!/usr/bin/env bash
# Runs every cargo-fuzz target in core/fuzz and prints one line per target.
#   scripts/fuzz.sh time SECONDS   each target for SECONDS (the short run in `make test`)
#   scripts/fuzz.sh runs N         each target for N executions (`make fuzz`, the campaign)
# Further arguments name the targets to run (default: all).
# Without a sanitizer: the fuzzed code is safe Rust (the one `unsafe` block, the MIT-SHM
# read, is not reachable from these decoders), so ASan would only slow it down.
# Exits non-zero if any target finds a crash; the input is kept in core/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../core"
mode=${1:?usage: fuzz.sh time SECONDS | runs N}
amount=${2:?usage: fuzz.sh time SECONDS | runs N}
case "$mode" in
  time) limit="-max_total_time=$amount" ;;
  runs) limit="-runs=$amount" ;;
  *) echo "fuzz.sh: unknown mode '$mode' (time or runs)" >&2; exit 2 ;;
esac
command -v cargo-fuzz >/dev/null || {
  echo "fuzz.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2; exit 2; }
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP unlocks them on the stable toolchain.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
mkdir -p ../target/fuzz
failed=0
printf '%-18s %12s %8s %10s %6s %s\n' target executions seconds exec/s cov result
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
  log=../target/fuzz/$t.log
  if cargo fuzz run -s none "$t" -- "$limit" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and core/fuzz/artifacts/$t/)"
    failed=1
  fi
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  rate=$(( secs > 0 ? runs / secs : runs ))
  printf '%-18s %12s %8s %10s %6s %s\n' "$t" "$runs" "$secs" "$rate" "$cov" "$result"
done
exit $failed
