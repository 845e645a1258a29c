#!/usr/bin/env bash
# Installs everything cargohold and its tests need on a Debian 12 machine, as root.
# Idempotent: a second run installs nothing new and finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(python3 python3-venv python3-dev gcc runc iptables iproute2 util-linux busybox-static
      tini zstd xz-utils bzip2 gzip tar curl ca-certificates debootstrap git)
# Security tests: a static seccomp probe (gcc -static needs libc6-dev) and apparmor_parser, which
# loads the default AppArmor profile where the kernel has AppArmor and syntax-checks it elsewhere.
PKGS+=(libc6-dev apparmor)
# Oracles and interop partners for the tests (daemonless ones only; docker is optional).
PKGS+=(skopeo podman docker.io)
# Registry tests: a real Distribution registry on 127.0.0.1, htpasswd for its auth.
PKGS+=(docker-registry apache2-utils openssl)
# `cargohold image bootstrap debian:SUITE` (debootstrap is the fallback).
PKGS+=(mmdebstrap)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Byte-compile our sources even where PYTHONDONTWRITEBYTECODE is set: every CLI call would
# otherwise recompile what it imports (~50 ms).  Unchanged files are skipped, so this is cheap.
.venv/bin/python -m compileall -q src >/dev/null
