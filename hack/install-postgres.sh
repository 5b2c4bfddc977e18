#!/usr/bin/env bash
# install-postgres.sh makes sure the PostgreSQL server binaries (initdb, postgres) that
# internal/pgtest starts throwaway clusters with are installed, from the Debian package.
#
# Usage: hack/install-postgres.sh
#
# Idempotent: when initdb is already in /usr/lib/postgresql/15/bin, pg_config --bindir or
# another /usr/lib/postgresql/<version>/bin, it prints its version and changes nothing. Needs
# no stdin (CI).
set -euo pipefail

find_initdb() {
  local dir
  # 15 first (what the project tests against), then pg_config, then the newest Debian install.
  for dir in /usr/lib/postgresql/15/bin "$(pg_config --bindir 2>/dev/null || true)" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -rn); do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      echo "$dir/initdb"
      return 0
    fi
  done
  return 1
}

if initdb=$(find_initdb); then
  echo ">> PostgreSQL server present: $("$initdb" --version) ($initdb)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-postgres.sh: the PostgreSQL server is not installed and installing it needs root." >&2
  echo "  Run as root, give this user password-less sudo, or install it yourself:" >&2
  echo "  sudo apt-get install -y --no-install-recommends postgresql" >&2
  echo "  (any PostgreSQL 15+ whose initdb and postgres are in pg_config --bindir will do)." >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres.sh: no apt-get here; install the PostgreSQL server (15) with your package manager" >&2
  echo "  so that pg_config --bindir holds initdb and postgres." >&2
  exit 1
fi

echo ">> installing the PostgreSQL server (Debian package postgresql)"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql </dev/null

if ! initdb=$(find_initdb); then
  echo "install-postgres.sh: postgresql installed, but no initdb and postgres in /usr/lib/postgresql/*/bin" >&2
  echo "  or pg_config --bindir." >&2
  exit 1
fi
echo ">> PostgreSQL server installed: $("$initdb" --version) ($initdb)"
