#!/usr/bin/env bash
# Install the Debian packages the test suite needs (real PostgreSQL and MariaDB
# servers; tests/dbservers.py starts throwaway instances of them itself).
#
# Idempotent: if every package is already installed, apt is not touched at all.
# Never leaves a system-wide database server running: service start-up during
# package configuration is blocked with a temporary policy-rc.d, and anything
# that started anyway is stopped afterwards.
set -euo pipefail

PACKAGES=(postgresql mariadb-server)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "system-packages: already installed: ${PACKAGES[*]}"
    exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo)
fi

echo "system-packages: installing ${missing[*]}"

# Keep invoke-rc.d from starting services while the packages are configured.
# If a policy-rc.d already exists (Docker images ship one), leave it alone.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    own_policy=1
fi

cleanup() {
    if [[ $own_policy -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null

# Belt and braces: if a system-wide server got started anyway, stop it (the
# tests start their own private servers). Only act on a server that is really
# running: Debian's init scripts fall back to "killall mariadbd", which would
# also hit private test servers.
running_pid() {  # running_pid PIDFILE -> exit 0 if that process is alive
    [[ -r "$1" ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null
}
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    for svc in postgresql mariadb; do
        if systemctl is-active --quiet "$svc"; then
            "${SUDO[@]}" systemctl stop "$svc" || true
        fi
    done
else
    if running_pid /run/mysqld/mysqld.pid; then
        "${SUDO[@]}" /etc/init.d/mariadb stop >/dev/null || true
    fi
    for pidfile in /run/postgresql/*.pid; do
        if running_pid "$pidfile"; then
            "${SUDO[@]}" /etc/init.d/postgresql stop >/dev/null || true
            break
        fi
    done
fi

echo "system-packages: done"
