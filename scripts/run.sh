#!/usr/bin/env bash
# Quick start, line 1: install what is missing, build, and run `hienode serve` in the foreground on its
# embedded PostgreSQL (state in ./state, HTTP on 127.0.0.1:8080). Extra arguments go to hienode serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh run
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/hienode serve "$@"
