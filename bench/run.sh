#!/bin/sh
# Runs the XDS.b benchmarks against a Release build of the node and prints one table at the end.
#   bench/run.sh                 full run (several minutes: the FindDocuments data set is 1,000,000 entries)
#   BENCH_QUICK=1 bench/run.sh   smoke run (small sizes, under a minute)
#   bench/run.sh register find   only some of: register find retrieve smime direct edge
#   (direct: Direct end to end over SMTP, bench/direct_e2e.py; sizes BENCH_DIRECT_* in its header)
#   (edge: the mailbox API over HTTPS, bench/edge_api.py; sizes BENCH_EDGE_* in its header)
# Sizes: see the header of each bench/xds_*.py (BENCH_REG_*, BENCH_FIND_*, BENCH_RET_*). BENCH_PERF=1 adds a
# `perf record -a` profile of every HTTP phase. HIENODE_BIN overrides the binary (default build-bench/hienode,
# built here with CMAKE_BUILD_TYPE=Release when missing or older than the sources).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
build="$src/build-bench"
if [ -z "${HIENODE_BIN:-}" ]; then
	HIENODE_BIN="$build/hienode"
	if [ ! -x "$HIENODE_BIN" ] || [ -n "$(find "$src/core" "$src/registry" "$src/node" "$src/xca" "$src/hisp" \
		"$src/notify" "$src/CMakeLists.txt" -newer "$HIENODE_BIN" \( -name '*.[ch]' -o -name CMakeLists.txt \) \
		2>/dev/null | head -1)" ]; then
		echo "== building the Release node in $build"
		mkdir -p "$build"
		log="$build/build.log"
		if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release && cmake --build "$build" -j2 --target hienode; } >"$log" 2>&1; then
			tail -40 "$log"
			echo "== Release build failed (log: $log)" >&2
			exit 1
		fi
		grep "warning:" "$log" || true
	fi
fi
export HIENODE_BIN
results=$(mktemp /tmp/bench-results.XXXXXX)
export BENCH_RESULTS="$results"
trap 'rm -f "$results"' EXIT
set -- ${*:-register find retrieve smime direct edge}
status=0
for b in "$@"; do
	case "$b" in
	register | find | retrieve) python3 "$here/xds_$b.py" || status=1 ;;
	smime)
		# S/MIME on one core against raw OpenSSL primitives over the same bytes (bench/smime_bench.c).
		if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHIENODE_BENCH=ON &&
			cmake --build "$build" -j2 --target smime_bench; } >"$build/build-smime.log" 2>&1; then
			tail -20 "$build/build-smime.log"; status=1
		else
			taskset -c 0 "$build/smime_bench" || status=1
		fi ;;
	direct) python3 "$here/direct_e2e.py" || status=1 ;;
	edge) python3 "$here/edge_api.py" || status=1 ;;
	*) echo "unknown benchmark $b (register, find, retrieve, smime, direct, edge)" >&2; exit 2 ;;
	esac
	echo
done
echo "== summary ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(basename "$HIENODE_BIN") $(date -u +%Y-%m-%dT%H:%MZ))"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| benchmark | figure | ceiling | ratio | goal |")
print("|---|---|---|---|---|")
for r in rows:
    goal = r["goal"] + ("" if r["met"] is None else (" — met" if r["met"] else " — NOT met"))
    print("| %s | %s | %s | %s | %s |" % (r["benchmark"], r["figure"], r["ceiling"], r["ratio"], goal))
PY
exit $status
