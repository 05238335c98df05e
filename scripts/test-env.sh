#!/usr/bin/env bash
# Test rig for sitebackup: a private single-node Garage (S3), a private
# s3s-fs (a second, independent S3 server: it keeps objects as files and
# lacks some optional calls, ListMultipartUploads among them) and a private
# MariaDB, all bound to loopback only, with fixed test credentials.
#
# Usage:
#   scripts/test-env.sh start DIR   start the servers, state and logs in DIR,
#                                   and write DIR/env (export lines)
#   scripts/test-env.sh stop DIR    stop the servers (by pid files in DIR)
#
# It can also be sourced: `. scripts/test-env.sh start DIR` starts the servers
# (in a subshell, so the caller's shell options are untouched) and then
# sources DIR/env into the calling shell.
#
# `start` refuses to run while servers from an earlier `start` in the same
# DIR are still alive; otherwise it wipes DIR/garage, DIR/s3s and DIR/mariadb
# and starts from a fresh state (nothing else in DIR is touched).
#
# Environment overrides (defaults in brackets):
#   SB_GARAGE_S3_PORT [3900]  SB_GARAGE_RPC_PORT [3901]
#   SB_GARAGE_ADMIN_PORT [3903]  SB_MARIADB_PORT [3907]  SB_S3S_PORT [3910]
#   SB_GARAGE_BIN  path of the garage binary [garage in PATH, ~/.cargo/bin]
#   SB_S3S_BIN     path of the s3s-fs binary [s3s-fs in PATH, ~/.cargo/bin]
#   SB_START_TIMEOUT  seconds to wait for each readiness step [60]
#   SB_STOP_TIMEOUT   seconds to wait for a server to exit after SIGTERM [30]

# Fixed test credentials. Garage access key ids are "GK" + 24 hex digits.
SBENV_ACCESS_KEY="GK0123456789abcdef01234567"
SBENV_SECRET_KEY="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SBENV_RPC_SECRET="5bd2e5e0b1c3a4f6d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5"
SBENV_ADMIN_TOKEN="sitebackup-test-admin-token"
SBENV_REGION="garage"
SBENV_BUCKETS="sb-one sb-two sb-three sb-four"
SBENV_KEY_NAME="test"
SBENV_MYSQL_USER="sbtest"
SBENV_MYSQL_PASSWORD="sbtest-pw"
# What the command lines of our server processes look like (pid file checks).
SBENV_GARAGE_RE='garage .*server'
SBENV_S3S_RE='s3s-fs .*--port'
# s3s-fs: any key pair works; it checks SigV4 with it, for any region.
SBENV_S3S_ACCESS_KEY="SBS3SACCESSKEY000001"
SBENV_S3S_SECRET_KEY="sbs3s-secret-0123456789abcdefghijklmnopqrstuv"
SBENV_S3S_REGION="us-east-1"
SBENV_S3S_BUCKETS="sb-one sb-two sb-three sb-four"
SBENV_MARIADB_RE='(mariadbd|mysqld) '

sbenv_log() {
	printf '[test-env] %s\n' "$*" >&2
}

sbenv_die() {
	printf '[test-env] ERROR: %s\n' "$*" >&2
	exit 1
}

# Print the tail of a log file to stderr (used on failures).
sbenv_show_log() {
	local file=$1
	if [[ -f $file ]]; then
		printf '[test-env] ---- last lines of %s ----\n' "$file" >&2
		tail -n 40 "$file" >&2 || true
		printf '[test-env] ---- end of %s ----\n' "$file" >&2
	fi
}

# sbenv_fail LOGFILE... -- MESSAGE: show logs, then die.
sbenv_fail() {
	local logs=()
	while (($# > 0)) && [[ $1 != -- ]]; do
		logs+=("$1")
		shift
	done
	shift || true
	local f
	for f in "${logs[@]}"; do
		sbenv_show_log "$f"
	done
	sbenv_die "$*"
}

sbenv_alive() {
	local pid=$1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# sbenv_poll TIMEOUT PID DESCRIPTION CMD...: run CMD until it succeeds.
# Fails (returns 1) when TIMEOUT seconds pass, or at once when process PID
# (if not empty) has died.
sbenv_poll() {
	local timeout=$1 pid=$2 what=$3
	shift 3
	local deadline=$((SECONDS + timeout))
	while true; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if [[ -n $pid ]] && ! sbenv_alive "$pid"; then
			sbenv_log "server process $pid exited while waiting for: $what"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			sbenv_log "timed out after ${timeout}s waiting for: $what"
			return 1
		fi
		sleep 0.2
	done
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
sbenv_port_open() {
	local port=$1
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

sbenv_require_free_port() {
	local port=$1 what=$2
	if sbenv_port_open "$port"; then
		sbenv_die "port 127.0.0.1:$port ($what) is already in use; free it or override the port (see the header of $0)"
	fi
}

sbenv_find_garage() {
	if [[ -n ${SB_GARAGE_BIN:-} ]]; then
		[[ -x $SB_GARAGE_BIN ]] || sbenv_die "SB_GARAGE_BIN=$SB_GARAGE_BIN is not executable"
		printf '%s\n' "$SB_GARAGE_BIN"
	elif command -v garage >/dev/null 2>&1; then
		command -v garage
	elif [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/garage ]]; then
		printf '%s\n' "${CARGO_HOME:-$HOME/.cargo}/bin/garage"
	else
		sbenv_die "garage not found (run scripts/install-deps.sh)"
	fi
}

sbenv_find_s3s() {
	if [[ -n ${SB_S3S_BIN:-} ]]; then
		[[ -x $SB_S3S_BIN ]] || sbenv_die "SB_S3S_BIN=$SB_S3S_BIN is not executable"
		printf '%s\n' "$SB_S3S_BIN"
	elif command -v s3s-fs >/dev/null 2>&1; then
		command -v s3s-fs
	elif [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs ]]; then
		printf '%s\n' "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
	else
		sbenv_die "s3s-fs not found (run scripts/install-deps.sh)"
	fi
}

# sbenv_find_tool NAME...: first of the names found in PATH or /usr/sbin, /usr/bin.
sbenv_find_tool() {
	local name dir
	for name in "$@"; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
		for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
			if [[ -x $dir/$name ]]; then
				printf '%s\n' "$dir/$name"
				return 0
			fi
		done
	done
	sbenv_die "none of [$*] found (run scripts/install-deps.sh)"
}

# sbenv_live_pid PIDFILE REGEX: print the pid in PIDFILE if that process is
# alive and (where /proc exists) its command line matches REGEX, so that a
# stale pid file whose pid was reused is never acted on.
sbenv_live_pid() {
	local file=$1 regex=$2 pid cmdline
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	sbenv_alive "$pid" || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		[[ $cmdline =~ $regex ]] || return 1
	fi
	printf '%s\n' "$pid"
}

# sbenv_stop_pidfile PIDFILE NAME REGEX: SIGTERM, poll for exit, SIGKILL on
# timeout.
sbenv_stop_pidfile() {
	local file=$1 name=$2 regex=$3 pid deadline
	if ! pid=$(sbenv_live_pid "$file" "$regex"); then
		rm -f "$file"
		return 0
	fi
	sbenv_log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + ${SB_STOP_TIMEOUT:-30}))
	while sbenv_alive "$pid"; do
		if ((SECONDS >= deadline)); then
			sbenv_log "$name (pid $pid) did not exit after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while sbenv_alive "$pid"; do
				((SECONDS < deadline)) || sbenv_die "$name (pid $pid) survived SIGKILL"
				sleep 0.1
			done
			break
		fi
		sleep 0.1
	done
	rm -f "$file"
}

# ---------------------------------------------------------------- garage ---

sbenv_start_garage() {
	local dir=$1
	local gdir=$dir/garage
	local cfg=$gdir/garage.toml
	local log=$dir/garage.log
	local timeout=${SB_START_TIMEOUT:-60}
	local garage pid node_id bucket

	garage=$(sbenv_find_garage)
	sbenv_require_free_port "$SB_GARAGE_S3_PORT" "garage s3"
	sbenv_require_free_port "$SB_GARAGE_RPC_PORT" "garage rpc"
	sbenv_require_free_port "$SB_GARAGE_ADMIN_PORT" "garage admin"

	rm -rf "$gdir"
	mkdir -p "$gdir/meta" "$gdir/data"
	cat >"$cfg" <<EOF
metadata_dir = "$gdir/meta"
data_dir = "$gdir/data"
db_engine = "sqlite"

replication_factor = 1
compression_level = "none"

rpc_bind_addr = "127.0.0.1:$SB_GARAGE_RPC_PORT"
rpc_public_addr = "127.0.0.1:$SB_GARAGE_RPC_PORT"
rpc_secret = "$SBENV_RPC_SECRET"

[s3_api]
s3_region = "$SBENV_REGION"
api_bind_addr = "127.0.0.1:$SB_GARAGE_S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$SB_GARAGE_ADMIN_PORT"
admin_token = "$SBENV_ADMIN_TOKEN"
EOF

	sbenv_log "starting garage ($garage, s3 127.0.0.1:$SB_GARAGE_S3_PORT)"
	# The server appends (O_APPEND) so that the setup commands below can add
	# their output to the same log without being overwritten.
	: >"$log"
	NO_COLOR=1 RUST_LOG=${SB_GARAGE_LOG:-garage=info} \
		"$garage" -c "$cfg" server >>"$log" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$dir/garage.pid"

	sbenv_poll "$timeout" "$pid" "garage status" "$garage" -c "$cfg" status ||
		sbenv_fail "$log" -- "garage did not come up"

	# `node id -q` prints "<64 hex>@<rpc_public_addr>"; layout wants the hex part.
	node_id=$("$garage" -c "$cfg" node id -q 2>>"$log") ||
		sbenv_fail "$log" -- "garage node id failed"
	node_id=${node_id%%@*}
	[[ $node_id =~ ^[0-9a-f]{64}$ ]] || sbenv_fail "$log" -- "unexpected garage node id: '$node_id'"

	sbenv_garage "$log" "$garage" -c "$cfg" layout assign -z dc1 -c 10G "$node_id"
	sbenv_garage "$log" "$garage" -c "$cfg" layout apply --version 1
	sbenv_garage "$log" "$garage" -c "$cfg" key import --yes -n "$SBENV_KEY_NAME" \
		"$SBENV_ACCESS_KEY" "$SBENV_SECRET_KEY"
	# Lets tests create (and, as owner, delete) throw-away buckets over S3.
	sbenv_garage "$log" "$garage" -c "$cfg" key allow --create-bucket "$SBENV_KEY_NAME"
	for bucket in $SBENV_BUCKETS; do
		sbenv_garage "$log" "$garage" -c "$cfg" bucket create "$bucket"
		sbenv_garage "$log" "$garage" -c "$cfg" bucket allow --read --write --owner \
			"$bucket" --key "$SBENV_KEY_NAME"
	done

	sbenv_poll "$timeout" "$pid" "garage S3 API on 127.0.0.1:$SB_GARAGE_S3_PORT" \
		sbenv_http_answers "http://127.0.0.1:$SB_GARAGE_S3_PORT/" ||
		sbenv_fail "$log" -- "garage S3 API did not answer"
	sbenv_log "garage ready (pid $pid)"
}

# Run one garage admin command, appending its output to the log; fail loudly.
sbenv_garage() {
	local log=$1
	shift
	printf '+ garage %s\n' "${*:2}" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		sbenv_fail "$log" -- "garage command failed: ${*:2}"
	fi
}

# True when an HTTP server answers at URL with any status code.
sbenv_http_answers() {
	local url=$1 code
	code=$(curl --noproxy '*' -s -o /dev/null -m 2 -w '%{http_code}' "$url") || true
	[[ -n $code && $code != 000 ]]
}

# ---------------------------------------------------------------- s3s-fs ---

# The aws cli against the rig's s3s-fs.
sbenv_s3s_aws() {
	env -u AWS_CA_BUNDLE -u AWS_PROFILE \
		AWS_ACCESS_KEY_ID="$SBENV_S3S_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SBENV_S3S_SECRET_KEY" \
		AWS_DEFAULT_REGION="$SBENV_S3S_REGION" \
		aws --endpoint-url "http://127.0.0.1:$SB_S3S_PORT" "$@"
}

sbenv_start_s3s() {
	local dir=$1
	local data=$dir/s3s/data
	local log=$dir/s3s.log
	local timeout=${SB_START_TIMEOUT:-60}
	local s3s pid bucket

	s3s=$(sbenv_find_s3s)
	command -v aws >/dev/null 2>&1 || sbenv_die "aws not found (run scripts/install-deps.sh)"
	sbenv_require_free_port "$SB_S3S_PORT" "s3s-fs"
	rm -rf "$dir/s3s"
	mkdir -p "$data"
	: >"$log"
	sbenv_log "starting s3s-fs ($s3s, 127.0.0.1:$SB_S3S_PORT, data in $data)"
	# Path-style only (no --domain: with one, s3s-fs reads any other Host
	# as a bucket name). The virtual-hosted-style test starts its own.
	NO_COLOR=1 RUST_LOG=${SB_S3S_LOG:-s3s_fs=info,s3s=warn} \
		"$s3s" --host 127.0.0.1 --port "$SB_S3S_PORT" \
		--access-key "$SBENV_S3S_ACCESS_KEY" --secret-key "$SBENV_S3S_SECRET_KEY" \
		"$data" >>"$log" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$dir/s3s.pid"

	sbenv_poll "$timeout" "$pid" "s3s-fs on 127.0.0.1:$SB_S3S_PORT" \
		sbenv_http_answers "http://127.0.0.1:$SB_S3S_PORT/" ||
		sbenv_fail "$log" -- "s3s-fs did not answer"
	# Buckets over S3 (a signed request: the keys work, too).
	for bucket in $SBENV_S3S_BUCKETS; do
		printf '+ aws s3api create-bucket --bucket %s\n' "$bucket" >>"$log"
		sbenv_s3s_aws s3api create-bucket --bucket "$bucket" >>"$log" 2>&1 ||
			sbenv_fail "$log" -- "creating bucket $bucket on s3s-fs failed"
	done
	sbenv_log "s3s-fs ready (pid $pid)"
}

# --------------------------------------------------------------- mariadb ---

sbenv_start_mariadb() {
	local dir=$1
	local data=$dir/mariadb
	local sock=$data/mysql.sock
	local log=$dir/mariadb.log
	local install_log=$dir/mariadb-install.log
	local timeout=${SB_START_TIMEOUT:-60}
	local install_db mariadbd client pid user_host sql

	install_db=$(sbenv_find_tool mariadb-install-db mysql_install_db)
	mariadbd=$(sbenv_find_tool mariadbd mysqld)
	client=$(sbenv_find_tool mariadb mysql)
	sbenv_require_free_port "$SB_MARIADB_PORT" "mariadb"
	# sun_path is 108 bytes on Linux.
	((${#sock} < 100)) || sbenv_die "socket path too long for a unix socket: $sock (use a shorter DIR)"

	rm -rf "$data"
	mkdir -p "$data"
	sbenv_log "initialising mariadb datadir $data"
	if ! "$install_db" --no-defaults --datadir="$data" --user="$(id -un)" \
		--auth-root-authentication-method=normal --skip-test-db \
		>"$install_log" 2>&1 </dev/null; then
		sbenv_fail "$install_log" -- "mariadb-install-db failed"
	fi

	: >"$log"
	sbenv_log "starting mariadb ($mariadbd, 127.0.0.1:$SB_MARIADB_PORT, socket $sock)"
	"$mariadbd" --no-defaults --datadir="$data" --socket="$sock" \
		--port="$SB_MARIADB_PORT" --bind-address=127.0.0.1 --user="$(id -un)" \
		--pid-file="$data/mariadb.pid" --skip-name-resolve \
		>>"$log" 2>&1 </dev/null &
	pid=$!
	printf '%s\n' "$pid" >"$dir/mariadb.pid"

	sbenv_poll "$timeout" "$pid" "mariadb socket $sock" \
		"$client" --no-defaults -S "$sock" -uroot -e 'select 1' ||
		sbenv_fail "$log" -- "mariadb did not come up"

	# Root stays password-less over the socket. sbtest gets a password and all
	# privileges from anywhere; with --skip-name-resolve a TCP client on
	# 127.0.0.1 matches '127.0.0.1' or '%', a socket client 'localhost'.
	sql="DELETE FROM mysql.global_priv WHERE User = '';"
	for user_host in '%' 'localhost' '127.0.0.1'; do
		sql+=" CREATE USER '$SBENV_MYSQL_USER'@'$user_host' IDENTIFIED BY '$SBENV_MYSQL_PASSWORD';"
		sql+=" GRANT ALL PRIVILEGES ON *.* TO '$SBENV_MYSQL_USER'@'$user_host' WITH GRANT OPTION;"
	done
	sql+=" FLUSH PRIVILEGES;"
	printf '+ %s\n' "$sql" >>"$log"
	if ! "$client" --no-defaults -S "$sock" -uroot -e "$sql" >>"$log" 2>&1; then
		sbenv_fail "$log" -- "creating the $SBENV_MYSQL_USER user failed"
	fi

	sbenv_poll "$timeout" "$pid" "mariadb TCP login as $SBENV_MYSQL_USER" \
		"$client" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$SB_MARIADB_PORT" \
		-u"$SBENV_MYSQL_USER" -p"$SBENV_MYSQL_PASSWORD" -e 'select 1' ||
		sbenv_fail "$log" -- "mariadb TCP login as $SBENV_MYSQL_USER failed"
	sbenv_log "mariadb ready (pid $pid)"
}

# -------------------------------------------------------------- env file ---

sbenv_write_env() {
	local dir=$1 garage s3s
	garage=$(sbenv_find_garage)
	s3s=$(sbenv_find_s3s)
	{
		printf '# Written by scripts/test-env.sh start; source this file.\n'
		printf 'export %s=%q\n' \
			SB_TEST_S3_ENDPOINT "http://127.0.0.1:$SB_GARAGE_S3_PORT" \
			SB_TEST_S3_REGION "$SBENV_REGION" \
			SB_TEST_S3_ACCESS_KEY "$SBENV_ACCESS_KEY" \
			SB_TEST_S3_SECRET_KEY "$SBENV_SECRET_KEY" \
			SB_TEST_BUCKETS "$SBENV_BUCKETS" \
			SB_TEST_GARAGE_CONFIG "$dir/garage/garage.toml" \
			SB_TEST_GARAGE_BIN "$garage" \
			SB_TEST_GARAGE_ADMIN_ENDPOINT "http://127.0.0.1:$SB_GARAGE_ADMIN_PORT" \
			SB_TEST_GARAGE_ADMIN_TOKEN "$SBENV_ADMIN_TOKEN" \
			SB_TEST_S3S_ENDPOINT "http://127.0.0.1:$SB_S3S_PORT" \
			SB_TEST_S3S_REGION "$SBENV_S3S_REGION" \
			SB_TEST_S3S_ACCESS_KEY "$SBENV_S3S_ACCESS_KEY" \
			SB_TEST_S3S_SECRET_KEY "$SBENV_S3S_SECRET_KEY" \
			SB_TEST_S3S_BUCKETS "$SBENV_S3S_BUCKETS" \
			SB_TEST_S3S_DATA_DIR "$dir/s3s/data" \
			SB_TEST_S3S_BIN "$s3s" \
			SB_TEST_MYSQL_SOCKET "$dir/mariadb/mysql.sock" \
			SB_TEST_MYSQL_HOST "127.0.0.1" \
			SB_TEST_MYSQL_PORT "$SB_MARIADB_PORT" \
			SB_TEST_MYSQL_USER "$SBENV_MYSQL_USER" \
			SB_TEST_MYSQL_PASSWORD "$SBENV_MYSQL_PASSWORD"
		# Loopback traffic must never go through a proxy, whatever the caller has.
		# shellcheck disable=SC2016 # expanded when the env file is sourced
		printf '%s\n' \
			'export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"' \
			'export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"'
	} >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
}

# ------------------------------------------------------------ subcommands ---

sbenv_start() {
	local dir=$1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	if sbenv_live_pid "$dir/garage.pid" "$SBENV_GARAGE_RE" >/dev/null ||
		sbenv_live_pid "$dir/s3s.pid" "$SBENV_S3S_RE" >/dev/null ||
		sbenv_live_pid "$dir/mariadb.pid" "$SBENV_MARIADB_RE" >/dev/null; then
		sbenv_die "servers from an earlier start in $dir are still running; run: $0 stop $dir"
	fi
	rm -f "$dir/env"
	# Whatever fails below, don't leave half a rig running.
	# shellcheck disable=SC2064 # expand $dir now
	trap "sbenv_log 'start failed; stopping what was started'; sbenv_stop $(printf %q "$dir") || true" EXIT
	sbenv_start_garage "$dir"
	sbenv_start_s3s "$dir"
	sbenv_start_mariadb "$dir"
	sbenv_write_env "$dir"
	trap - EXIT
	sbenv_log "rig up; environment in $dir/env"
}

sbenv_stop() {
	local dir=$1
	[[ -d $dir ]] || {
		sbenv_log "$dir does not exist; nothing to stop"
		return 0
	}
	sbenv_stop_pidfile "$dir/garage.pid" garage "$SBENV_GARAGE_RE"
	sbenv_stop_pidfile "$dir/s3s.pid" s3s-fs "$SBENV_S3S_RE"
	sbenv_stop_pidfile "$dir/mariadb.pid" mariadb "$SBENV_MARIADB_RE"
}

sbenv_main() {
	set -euo pipefail
	SB_GARAGE_S3_PORT=${SB_GARAGE_S3_PORT:-3900}
	SB_GARAGE_RPC_PORT=${SB_GARAGE_RPC_PORT:-3901}
	SB_GARAGE_ADMIN_PORT=${SB_GARAGE_ADMIN_PORT:-3903}
	SB_MARIADB_PORT=${SB_MARIADB_PORT:-3907}
	SB_S3S_PORT=${SB_S3S_PORT:-3910}
	local usage="usage: $0 start|stop DIR"
	(($# == 2)) || sbenv_die "$usage"
	[[ -n $2 ]] || sbenv_die "$usage"
	case $1 in
	start) sbenv_start "$2" ;;
	stop) sbenv_stop "$2" ;;
	*) sbenv_die "$usage" ;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	sbenv_main "$@"
elif (($# > 0)); then
	# Sourced with arguments: do the work in a subshell, then import the env.
	(sbenv_main "$@") || return
	if [[ $1 == start ]]; then
		# shellcheck disable=SC1091 # written at run time
		. "$2/env"
	fi
fi
