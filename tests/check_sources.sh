#!/usr/bin/env bash
# Source rules that the compiler does not check (run by ctest as check/sources):
#  1. banned C functions in project code (STYLE.md "Untrusted input");
#  2. the include rules between modules (ARCHITECTURE.md "Layering");
#  3. config/hienode.conf.example is the output of `hienode config --example`.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
fail=0

banned=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|sscanf|strtok|atoi|gets)[[:space:]]*\(' \
  $(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]') 2>/dev/null |
  grep -v '^tests/' | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|//)')
if [ -n "$banned" ]; then
  echo "banned functions in project code:"; echo "$banned"; fail=1
fi

# module -> the project headers it may include (besides its own)
allowed() {
  case "$1" in
    core) echo "core/";;
    registry) echo "core/ registry/";;
    hisp) echo "core/ hisp/";;
    xca) echo "core/ xca/ registry/registry.h";;
    notify) echo "core/ notify/ registry/registry.h hisp/hisp.h";;
    node) echo "core/ registry/ hisp/ xca/ notify/ node/";;
  esac
}
for mod in core registry hisp xca notify node; do
  [ -d "$mod" ] || continue
  ok=$(allowed "$mod")
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    file=${hit%%:*}
    inc=$(printf '%s' "$hit" | sed -E 's/.*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/')
    good=0
    for prefix in $ok; do
      case "$prefix" in
        */) [ "${inc#"$prefix"}" != "$inc" ] && good=1;;
        *) [ "$inc" = "$prefix" ] && good=1;;
      esac
    done
    # a module's own files may include each other without a directory
    case "$inc" in */*) ;; *) good=1;; esac
    if [ $good -eq 0 ]; then
      echo "layering: $file includes \"$inc\" (module $mod may include only: $ok)"; fail=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$mod"/*.c "$mod"/*.h 2>/dev/null | sed -E 's/^([^:]+):[0-9]+:/\1:/')
  # registry, hisp: other modules' files are reached only through their public header
done

if [ -n "${HIENODE_BIN:-}" ] && [ -x "${HIENODE_BIN}" ]; then
  if ! diff -u config/hienode.conf.example <("$HIENODE_BIN" config --example) >/tmp/hienode-example.diff.$$ 2>&1; then
    echo "config/hienode.conf.example differs from 'hienode config --example' (regenerate it):"
    cat /tmp/hienode-example.diff.$$; fail=1
  fi
  rm -f /tmp/hienode-example.diff.$$
fi

if [ $fail -eq 0 ]; then echo "source checks: ok"; fi
exit $fail
