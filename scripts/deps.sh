#!/usr/bin/env bash
# Installs what hienode needs to build, run and test on Debian 12, skipping what is already there.
# Usage: scripts/deps.sh [run|test]   (test adds the tools the test suite drives)
# Runs apt-get as root, or through sudo for a user who has it. Also creates the unprivileged `hienode` user
# that the node drops to when started as root.
set -euo pipefail

mode=${1:-run}
pkgs=(build-essential cmake pkg-config ca-certificates
      libmicrohttpd-dev libgnutls28-dev libpq-dev libxml2-dev libssl-dev libcurl4-openssl-dev
      libldns-dev libldap2-dev libesmtp-dev libzip-dev libsodium-dev libjansson-dev
      postgresql postgresql-client openssl)
if [ "$mode" = test ]; then
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev python3 curl swaks unzip
        slapd ldap-utils nsd postfix)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  # The postgresql package would start a system cluster on port 5432; hienode runs its own, so keep it quiet.
  # The tests start their own slapd, nsd and Postfix instances: the packages must not configure or start
  # system-wide ones (ports 25, 53, 389) while they install.
  printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
    'slapd slapd/no_configuration boolean true' | "${sudo[@]}" debconf-set-selections
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ $policy_added -eq 1 ]; then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
fi

# Debian's postgresql package starts the default cluster; the node never uses it.
if [ "$(id -u)" -eq 0 ] && command -v pg_lsclusters >/dev/null 2>&1; then
  true
fi

if [ "$(id -u)" -eq 0 ] && ! getent passwd hienode >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hienode
  echo "deps: created system user hienode" >&2
fi
