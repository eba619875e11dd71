#!/usr/bin/env bash
# Quick start, line 2: install what is missing, build with AddressSanitizer + UndefinedBehaviorSanitizer,
# and run the whole suite with ctest: unit tests, the source checks, integration tests against the real
# daemon on loopback, and bounded fuzz runs. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
# The release build of Quick start line 1 (gcc, optimised: it warns about things the test build does not).
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
export CC=clang
cmake -S . -B build-test -DHIENODE_TESTS=ON -DHIENODE_SANITIZE=ON -DHIENODE_FUZZ=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest -j"$(nproc)" --output-on-failure "$@"
