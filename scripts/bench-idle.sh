#!/usr/bin/env bash
# Idle cost of the daemon: CPU seconds used and RSS over an idle period
# (default 60 s). The daemon runs with a local target, one site scheduled
# far in the future, catch-up off, and a 1 s watchdog (so the heartbeat and
# watchdog tasks are exercised). This is a benchmark, not a test.
#   scripts/bench-idle.sh [SECONDS]
set -euo pipefail
secs=${1:-60}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$repo_root/target}/release/sitebackup
work=$(mktemp -d "${TMPDIR:-/tmp}/sb-idle.XXXXXX")
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/site" "$work/backups"
echo '<?php' > "$work/site/index.php"
cat > "$work/config.toml" <<TOML
host_id = "idle"
state_dir = "$work/state"
[daemon]
catch_up = false
[[servers]]
id = 1
type = "local"
path = "$work/backups"
[[sites]]
name = "idle"
path = "$work/site"
schedule = "0 0 3 1 1 *"
TOML
WATCHDOG_USEC=1000000 SITEBACKUP_LOG=stderr "$bin" --config "$work/config.toml" -q daemon 2>"$work/daemon.log" &
pid=$!
# Wait for start-up to finish (the catalog exists), then measure from there.
for _ in $(seq 100); do [[ -f $work/state/catalog.db ]] && break; sleep 0.05; done
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
start=$(cpu_ticks)
sleep "$secs"
end=$(cpu_ticks)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
awk -v s="$secs" -v a="$start" -v b="$end" -v t="$ticks" -v r="$rss_kb" -v h="$hwm_kb" \
	'BEGIN { printf "idle daemon over %ss: CPU %.3f s, RSS %.1f MiB (peak %.1f MiB)\n", s, (b - a) / t, r / 1024, h / 1024 }'
kill -TERM "$pid"
wait "$pid"
