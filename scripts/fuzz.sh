#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer, nightly) for a bounded time on its
# committed corpus (fuzz/corpus/TARGET; inputs found during the run go to target/fuzz/found/TARGET).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 20)
#
# A crash stops the run: libFuzzer writes the input to fuzz/artifacts/TARGET/; make it a
# regression test (a seed in the corpus and a unit test of the parser) once fixed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-20}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export CARGO_TARGET_DIR="$target_dir/fuzz"
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build
for target in $targets; do
  echo "---- fuzz $target (${seconds}s)"
  mkdir -p "corpus/$target"
  # New inputs go to a scratch directory (libFuzzer writes to the first one), so a run leaves
  # the committed corpus as it is; add finds to corpus/ deliberately, minimized (cargo fuzz cmin).
  found="$CARGO_TARGET_DIR/found/$target"
  mkdir -p "$found"
  log="$CARGO_TARGET_DIR/fuzz-$target.log"
  if ! cargo +nightly fuzz run "$target" "$found" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" || true
done
