#!/usr/bin/env bash
# Kith next to Synapse, the reference Matrix homeserver, on the same 1:1 workload.
#
# A manual benchmark (CI does not run it): it installs Synapse from PyPI into a
# throwaway virtualenv, runs it on 127.0.0.1 with federation off, measures it with
# bench/synapse_load.py, stops it, runs Kith's `delivery` bench with the same knobs, and
# prints both with the ratios Kith/Synapse. See docs/benchmarks.md, "Kith vs Synapse".
#
# Usage: bench/compare-synapse.sh
# Environment:
#   COMPARE_SEQ=200         sequential messages for latency
#   COMPARE_N=8000          messages for throughput (both systems)
#   COMPARE_CONC=8          concurrent sending connections (both systems)
#   SYNAPSE_VERSION=        pin a version (default: the newest on PyPI)
#   SYNAPSE_VENV=           reuse an existing virtualenv with Synapse instead of
#                           installing one (it is left in place)
#   KEEP_WORKDIR=1          keep the temporary directory (config, database, logs)
#
# Network: Synapse listens on 127.0.0.1 only and is configured never to reach another
# host (no federation listener, an empty federation whitelist, no key servers, no stats,
# no URL previews, no push); the driver samples its sockets and reports any that is not
# on loopback. Only pip talks to PyPI, while installing.
set -euo pipefail

SEQ=${COMPARE_SEQ:-200}
N=${COMPARE_N:-8000}
CONC=${COMPARE_CONC:-8}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRIVER="$ROOT/bench/synapse_load.py"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kith-vs-synapse.XXXXXX")
SYN_PID=""

stop_synapse() {
    if [[ -n "$SYN_PID" ]] && kill -0 "$SYN_PID" 2>/dev/null; then
        kill -TERM "$SYN_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SYN_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SYN_PID" 2>/dev/null || true
        wait "$SYN_PID" 2>/dev/null || true
    fi
    SYN_PID=""
}

cleanup() {
    stop_synapse
    if [[ "${KEEP_WORKDIR:-}" == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

say() { printf '\n== %s\n' "$*"; }

# Both systems share the cores with their load generators, and anything else running
# spoils the figures: before each phase, how busy the whole machine was over 2 seconds is
# printed for the record (it should be near 0 %).
cpu_ticks() {
    local _cpu user nice system idle iowait irq softirq
    read -r _cpu user nice system idle iowait irq softirq _ </proc/stat
    # Stolen time is left out: it is the hypervisor's, not this machine's work.
    echo "$((user + nice + system + idle + iowait + irq + softirq)) $((idle + iowait))"
}
machine_busy() {
    local t0 i0 t1 i1 pct
    read -r t0 i0 < <(cpu_ticks)
    sleep 2
    read -r t1 i1 < <(cpu_ticks)
    pct=$(((100 * ((t1 - t0) - (i1 - i0))) / (t1 - t0 > 0 ? t1 - t0 : 1)))
    echo "machine busy before the $1 phase: $pct % of all cores over 2 s"
    if ((pct > 10)); then
        echo "warning: something else is running; the figures will be noisy" >&2
    fi
}

# ---------------------------------------------------------------- Kith build first
# Compile before anything is measured, so the compiler does not share the cores with
# Synapse's run.
say "building Kith's delivery bench"
(cd "$ROOT" && cargo bench -p kith --bench delivery --no-run)

# ---------------------------------------------------------------- Synapse install
if [[ -n "${SYNAPSE_VENV:-}" ]]; then
    VENV=$SYNAPSE_VENV
else
    say "installing matrix-synapse${SYNAPSE_VERSION:+==$SYNAPSE_VERSION} into $WORK/venv"
    python3 -m venv "$WORK/venv"
    VENV=$WORK/venv
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "matrix-synapse${SYNAPSE_VERSION:+==$SYNAPSE_VERSION}"
fi
SYN_VERSION=$("$VENV/bin/python" -c 'import synapse; print(synapse.__version__)')
echo "Synapse $SYN_VERSION"

# ---------------------------------------------------------------- Synapse config
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rand() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
SECRET=$(rand)
CFG=$WORK/homeserver.yaml
mkdir -p "$WORK/media"

cat >"$WORK/log.yaml" <<EOF
version: 1
formatters:
  plain:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    filename: $WORK/homeserver.log
    formatter: plain
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
EOF

cat >"$CFG" <<EOF
server_name: "kith-bench.localhost"
pid_file: $WORK/homeserver.pid
public_baseurl: "http://127.0.0.1:$PORT/"
listeners:
  # Client API only, loopback only; there is no federation listener.
  - port: $PORT
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $WORK/homeserver.db
log_config: $WORK/log.yaml
media_store_path: $WORK/media
signing_key_path: $WORK/signing.key
macaroon_secret_key: "$(rand)"
form_secret: "$(rand)"
registration_shared_secret: "$SECRET"
enable_registration: false
report_stats: false
enable_metrics: false
# Nothing leaves the machine: no server may federate with this one, no key servers are
# asked for keys, no URL previews are fetched.
federation_domain_whitelist: []
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
allow_public_rooms_over_federation: false
# Rate limits, raised so that they do not decide the figures (the defaults allow a user
# 0.2 messages per second with bursts of 10, which would make the throughput phase a
# measure of the limiter). Only the ones this workload meets are changed:
#   rc_message       every send
#   rc_registration  the two registrations
#   rc_joins.local   the receiver joining the room
#   rc_invites       the invitation
#   rc_room_creation the room
rc_message:
  per_second: 1000000
  burst_count: 1000000
rc_registration:
  per_second: 1000
  burst_count: 1000
rc_joins:
  local:
    per_second: 1000
    burst_count: 1000
rc_invites:
  per_room:
    per_second: 1000
    burst_count: 1000
  per_user:
    per_second: 1000
    burst_count: 1000
  per_issuer:
    per_second: 1000
    burst_count: 1000
rc_room_creation:
  per_second: 1000
  burst_count: 1000
EOF

"$VENV/bin/python" -m synapse.app.homeserver -c "$CFG" --generate-keys >/dev/null

# ---------------------------------------------------------------- Synapse run
machine_busy Synapse
say "starting Synapse on 127.0.0.1:$PORT (SQLite, federation off)"
"$VENV/bin/python" -m synapse.app.homeserver -c "$CFG" >"$WORK/synapse.out" 2>&1 &
SYN_PID=$!
if ! python3 "$DRIVER" wait --base "http://127.0.0.1:$PORT" --pid "$SYN_PID"; then
    tail -n 30 "$WORK/synapse.out" "$WORK/homeserver.log" >&2 || true
    exit 1
fi

say "Synapse: latency n=$SEQ, throughput n=$N over $CONC connections"
python3 "$DRIVER" run --base "http://127.0.0.1:$PORT" --pid "$SYN_PID" \
    --secret "$SECRET" --seq "$SEQ" --n "$N" --conc "$CONC" --json "$WORK/synapse.json"
stop_synapse

# ---------------------------------------------------------------- Kith run
machine_busy Kith
say "Kith: KITH_BENCH_SEQ=$SEQ KITH_BENCH_N=$N KITH_BENCH_CONCURRENCY=$CONC cargo bench -p kith --bench delivery"
(cd "$ROOT" && KITH_BENCH_SEQ=$SEQ KITH_BENCH_N=$N KITH_BENCH_CONCURRENCY=$CONC \
    cargo bench -p kith --bench delivery) | tee "$WORK/kith.out"

# ---------------------------------------------------------------- side by side
say "Kith vs Synapse $SYN_VERSION ($(nproc) cores; Kith $(git -C "$ROOT" rev-parse --short HEAD))"
python3 "$DRIVER" compare --synapse "$WORK/synapse.json" --kith "$WORK/kith.out"
