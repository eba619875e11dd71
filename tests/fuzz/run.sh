#!/usr/bin/env bash
# Bounded libFuzzer run for the test suite: fuzz_run.sh TARGET SEED_DIR SECONDS
# Works on a scratch copy of the seeds; a crash, leak or sanitizer report fails the test and keeps the input.
set -euo pipefail
target=$1 seeds=$2 secs=${3:-30}
work=$(mktemp -d /tmp/hienode-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
if [ -d "$seeds" ]; then cp -r "$seeds"/. "$work/corpus/"; fi
if ! "$target" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
     -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log"; then
  tail -n 60 "$work/log"
  keep=$(mktemp -d /tmp/hienode-fuzz-crash.XXXXXX)
  cp -r "$work/artifacts/." "$keep/" 2>/dev/null || true
  echo "fuzz: FAILED; reproducer kept in $keep"
  exit 1
fi
grep -E '^(stat::number_of_executed_units|INFO: Done|#[0-9]+.*DONE)' "$work/log" | tail -n 2
echo "fuzz: ok ($(basename "$target"), ${secs}s)"
