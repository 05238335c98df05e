#!/usr/bin/env bash
# Check the capability choice of systemd/sitebackup.service without systemd:
# run commands as root with only the unit's CapabilityBoundingSet (setpriv
# applies the same kernel rule systemd does: root's capabilities after
# execve are its bounding set) and show that such a process
#   - can read a site owned by another user with private modes (0700/0600),
#   - can reach a MariaDB socket owned by mysql and dump a database with
#     root's unix_socket login (the Debian default), into a root-owned 0700
#     state directory,
#   - cannot write into the site, nor change owners;
# and, as a control, that without CAP_DAC_READ_SEARCH the site is unreadable
# (so the check can fail).
#
# What this does not cover (no systemd as PID 1 here): ProtectSystem=strict,
# ReadWritePaths, PrivateTmp, the syscall filter and the other namespace
# settings. docs/hardening-check.md has the check to run on a systemd host.
#
# Needs root, setpriv (util-linux) and the MariaDB server and client
# (scripts/install-deps.sh installs them). Usage: check-unit-caps.sh [UNIT]
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
unit=${1:-$repo_root/systemd/sitebackup.service}

log() {
	printf '[check-unit-caps] %s\n' "$*" >&2
}
die() {
	printf '[check-unit-caps] FAIL: %s\n' "$*" >&2
	exit 1
}
ok() {
	printf '[check-unit-caps] ok: %s\n' "$*" >&2
}

[[ $(id -u) -eq 0 ]] || die "needs root"
for tool in setpriv mariadb-install-db mariadb mariadb-dump; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[[ -x $mariadbd ]] || die "mariadbd not found"
id mysql >/dev/null 2>&1 || die "no mysql user (the MariaDB server package creates it)"
site_user=nobody
site_group=$(id -gn "$site_user")

# CapabilityBoundingSet=CAP_A CAP_B -> setpriv's "-all,+a,+b"
caps_line=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[[ -n $caps_line ]] || die "$unit sets no CapabilityBoundingSet"
bounding=-all
for cap in $caps_line; do
	[[ $cap == CAP_* ]] || die "cannot translate '$cap' from CapabilityBoundingSet"
	name=${cap#CAP_}
	bounding+=,+${name,,}
done
log "unit bounding set: $caps_line (setpriv --bounding-set=$bounding)"
as_unit() {
	setpriv --bounding-set="$bounding" --inh-caps=-all --no-new-privs -- "$@"
}
as_no_caps() {
	setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"
}

# Short path: a unix socket path must fit in 108 bytes.
work=$(mktemp -d /tmp/sbcaps.XXXXXX)
chmod 0755 "$work"
db_pid=
cleanup() {
	local rc=$?
	if [[ -n $db_pid ]] && kill -0 "$db_pid" 2>/dev/null; then
		kill "$db_pid"
		local deadline=$((SECONDS + 30))
		while kill -0 "$db_pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.2
		done
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

# A site as web hosts have them: another user's files, private modes.
site=$work/www/site
mkdir -p "$site/wp-content/uploads"
printf "<?php define('DB_NAME', 'wp');\n" >"$site/wp-config.php"
printf 'image\n' >"$site/wp-content/uploads/a.jpg"
chown -R "$site_user:$site_group" "$work/www"
chmod 0700 "$work/www" "$site" "$site/wp-content" "$site/wp-content/uploads"
chmod 0600 "$site/wp-config.php" "$site/wp-content/uploads/a.jpg"

# The state directory as systemd creates it (StateDirectoryMode=0700).
state=$work/state
install -d -m 0700 "$state"

# MariaDB as Debian runs it: as mysql, socket in a mysql-owned 0755 dir,
# root logs in with unix_socket authentication.
install -d -o mysql -g mysql -m 0700 "$work/db"
install -d -o mysql -g root -m 0755 "$work/run"
sock=$work/run/mysqld.sock
log "starting a private mariadbd (as mysql, socket $sock)"
mariadb-install-db --no-defaults --datadir="$work/db" --user=mysql \
	--auth-root-authentication-method=socket --skip-test-db >"$work/install.log" 2>&1 </dev/null ||
	{
		cat "$work/install.log" >&2
		die "mariadb-install-db failed"
	}
"$mariadbd" --no-defaults --datadir="$work/db" --socket="$sock" --skip-networking --user=mysql \
	--pid-file="$work/run/mariadb.pid" >"$work/mariadb.log" 2>&1 </dev/null &
db_pid=$!
deadline=$((SECONDS + 60))
until mariadb --no-defaults -S "$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
	kill -0 "$db_pid" 2>/dev/null || {
		cat "$work/mariadb.log" >&2
		die "mariadbd exited"
	}
	((SECONDS < deadline)) || die "mariadbd did not answer within 60 s"
	sleep 0.2
done
mariadb --no-defaults -S "$sock" -uroot -e 'CREATE DATABASE wp; CREATE TABLE wp.t (v INT); INSERT INTO wp.t VALUES (42);'
log "socket: $(stat -c '%A %U:%G' "$sock")"

# --- with the unit's bounding set -------------------------------------------
want=$(tr ',' '\n' <<<"${bounding#-all,}" | tr -d + | sort | paste -sd,)
got=$(as_unit setpriv --dump | sed -n 's/^Capability bounding set: //p' | tr ',' '\n' | sort | paste -sd,)
[[ $got == "$want" ]] || die "bounding set is '$got', expected '$want'"
ok "a process started like the unit has the bounding set: $got"

as_unit tar -C "$work/www" -cf - site | tar -tf - >"$work/listing" || die "cannot archive the site"
grep -qx 'site/wp-config.php' "$work/listing" || die "the archive lacks site/wp-config.php"
grep -qx 'site/wp-content/uploads/a.jpg' "$work/listing" || die "the archive lacks the upload"
ok "reads another user's 0700/0600 site (tar lists $(wc -l <"$work/listing") entries)"

# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner sh
as_unit sh -c 'mariadb-dump --no-defaults -S "$1" -uroot --databases wp >"$2"' sh "$sock" "$state/wp.sql" ||
	die "mariadb-dump through $sock into the state dir failed"
grep -qF "INSERT INTO \`t\` VALUES" "$state/wp.sql" || die "the dump lacks the table's rows"
ok "dumps over the mysql-owned socket (unix_socket login as root) into the 0700 state dir"

if as_unit touch "$site/new-file" 2>/dev/null; then
	die "wrote into the site: the bounding set allows more than reading"
fi
if as_unit chown "$site_user" "$state/wp.sql" 2>/dev/null; then
	die "changed an owner: CAP_CHOWN is not dropped"
fi
ok "cannot write into the site, cannot chown"

# --- control: no capabilities at all -----------------------------------------
if as_no_caps cat "$site/wp-config.php" >/dev/null 2>&1; then
	die "control: read the site without any capability; the check proves nothing"
fi
ok "control: without CAP_DAC_READ_SEARCH the site is unreadable"
log "all capability checks passed"
