#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL on 127.0.0.1 for the registry tests; print its URL.
#
# Idempotent: installs the Debian `postgresql` package when no server binaries are found,
# initialises a cluster in $OPENCOHORT_PG_DIR (default /tmp/opencohort-pg) on a free port,
# starts it unless it already runs, creates the database $OPENCOHORT_PG_DB (default
# opencohort_test) and prints a SQLAlchemy URL on stdout. Everything else goes to stderr.
# Stop it with: pg_ctl -D "$OPENCOHORT_PG_DIR/data" stop (as the cluster's owner).
set -euo pipefail

base="${OPENCOHORT_PG_DIR:-/tmp/opencohort-pg}"
database="${OPENCOHORT_PG_DB:-opencohort_test}"
data="$base/data"

# Parallel test workers may call this at once: one at a time (the server must not inherit the lock).
exec 9>"$base.lock"
flock 9

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing Debian package: postgresql" >&2
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        postgresql >&2
    bin=$(find_bin)
fi

# initdb and postgres refuse to run as root: use the `postgres` account then.
owner=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    id "$owner" >/dev/null 2>&1 || useradd --system --no-create-home "$owner"
fi
as_owner() {
    if [ "$(id -un)" = "$owner" ]; then "$@"; else runuser -u "$owner" -- "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mkdir -p "$base"
chown "$owner" "$base" 2>/dev/null || true
chmod 700 "$base"
if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >&2
fi

if [ -f "$base/port" ]; then
    port=$(cat "$base/port")
else
    port=$((20000 + RANDOM % 20000))
    while ! port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
    echo "$port" >"$base/port"
fi

if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if ! port_free "$port"; then
        port=$((20000 + RANDOM % 20000))
        while ! port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
        echo "$port" >"$base/port"
    fi
    as_owner "$bin/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $base -c fsync=off -c full_page_writes=off" start >&2 9>&-
fi

exists=$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$database'")
if [ "$exists" != "1" ]; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$database"
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$port/$database"
