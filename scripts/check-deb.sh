#!/usr/bin/env bash
# Check the Debian package (issue 7):
#   1. build it (scripts/build-deb.sh), unless a .deb is given as $1;
#   2. its contents: binary, unit, man pages, completions, conffiles, modes,
#      changelog version;
#   3. lintian: fails on any error; warnings and overridden tags are printed
#      (packaging/lintian-overrides says why each override is there);
#   4. systemd-analyze verify of the unit, which must print nothing, and
#      systemd-analyze security (offline) under SB_MAX_EXPOSURE (default 3.0);
#   5. as root only: scripts/check-unit-caps.sh (the unit's bounding set
#      can read a private site and dump over the MariaDB socket, and no
#      more); then dpkg -i -> sitebackup --version -> config check ->
#      dpkg --verify -> dpkg -i again (upgrade keeps edited conffiles) ->
#      dpkg -r -> dpkg -P, and nothing of the package is left afterwards.
#      Refuses to run when sitebackup is already installed or
#      /etc/sitebackup or /var/lib/sitebackup exist, rather than purge an
#      operator's installation.
#      Not root: the check FAILS at step 5, unless SB_CHECK_DEB_ALLOW_SKIP=1
#      is set, which skips step 5 with a SKIPPED line (for a developer's
#      unprivileged run; CI runs as root and must not set it).
# Installs lintian with apt-get when it is missing. PID 1 need not be
# systemd: the maintainer scripts only enable the unit (symlinks).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

PKG=sitebackup
UNIT=sitebackup.service
MASTER_UNIT=sitebackup-master.service
MAX_EXPOSURE=${SB_MAX_EXPOSURE:-3.0}

log() {
	printf '[check-deb] %s\n' "$*" >&2
}
die() {
	printf '[check-deb] FAIL: %s\n' "$*" >&2
	exit 1
}
ok() {
	printf '[check-deb] ok: %s\n' "$*" >&2
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	SUDO=(sudo)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sb-check-deb.XXXXXX")
installed_by_us=0
cleanup() {
	local rc=$?
	if ((installed_by_us)); then
		log "cleaning up: purging the package installed by this check"
		dpkg -P "$PKG" >/dev/null 2>&1 || rc=1
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

# ---- 1. build -----------------------------------------------------------------
if [[ $# -ge 1 ]]; then
	deb=$(realpath "$1")
else
	deb=$(scripts/build-deb.sh | tail -n 1)
fi
[[ -f $deb ]] || die "no .deb at '$deb'"
log "package: $deb"

# ---- 2. contents --------------------------------------------------------------
version=$(dpkg-deb -f "$deb" Version)
crate_version=$(cargo metadata --format-version 1 --no-deps --locked |
	sed -n 's/.*"name":"sitebackup","version":"\([^"]*\)".*/\1/p')
[[ $version == "$crate_version"-* ]] ||
	die "package version $version does not start with the crate version $crate_version"

dpkg-deb -c "$deb" >"$work/contents"
need_file() { # PATH MODE
	grep -Eq "^$2 (root/root|0/0) +[0-9]+ [0-9-]+ [0-9:]+ \\.$1\$" "$work/contents" ||
		die "the package has no $1 with mode $2 owned by root"
}
need_file /usr/bin/sitebackup -rwxr-xr-x
need_file /usr/lib/systemd/system/$UNIT -rw-r--r--
need_file /usr/lib/systemd/system/$MASTER_UNIT -rw-r--r--
need_file /usr/share/man/man1/sitebackup.1.gz -rw-r--r--
need_file /usr/share/man/man1/sitebackup-restore.1.gz -rw-r--r--
need_file /usr/share/man/man5/sitebackup.toml.5.gz -rw-r--r--
need_file /usr/share/doc/sitebackup/README.md -rw-r--r--
need_file /usr/share/doc/sitebackup/config.example.toml -rw-r--r--
need_file /usr/share/bash-completion/completions/sitebackup -rw-r--r--
need_file /usr/share/zsh/vendor-completions/_sitebackup -rw-r--r--
need_file /usr/share/fish/vendor_completions.d/sitebackup.fish -rw-r--r--
need_file /etc/sitebackup/config.toml -rw-------
need_file /etc/sitebackup/sitebackup.env -rw-------
need_file /usr/share/doc/sitebackup/copyright -rw-r--r--
need_file /usr/share/doc/sitebackup/changelog.Debian.gz -rw-r--r--
ok "contents: binary, units, man pages (1, 5), completions, docs, config files (0600)"

dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
for f in /etc/sitebackup/config.toml /etc/sitebackup/sitebackup.env; do
	grep -qxF "$f" "$work/conffiles" || die "$f is not in conffiles: $(tr '\n' ' ' <"$work/conffiles")"
done
ok "conffiles: $(tr '\n' ' ' <"$work/conffiles")"

mkdir "$work/root"
dpkg-deb -x "$deb" "$work/root"
changelog_version=$(zcat "$work/root/usr/share/doc/sitebackup/changelog.Debian.gz" | sed -n '1s/^sitebackup (\([^)]*\)).*/\1/p')
[[ $changelog_version == "$version" ]] ||
	die "packaging/changelog's first entry is $changelog_version, the package is $version: add an entry"
ok "changelog matches version $version"

# The installed config.toml configures nothing: every setting commented out.
if grep -Ev '^[[:space:]]*(#|$)' "$work/root/etc/sitebackup/config.toml"; then
	die "/etc/sitebackup/config.toml has the uncommented lines above"
fi
ok "config.toml: every setting commented out"

# ---- 3. lintian ---------------------------------------------------------------
if ! command -v lintian >/dev/null 2>&1; then
	log "installing lintian"
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >&2
fi
log "lintian $(lintian --version)"
# --fail-on error: exit non-zero for errors only. Warnings, info and
# pedantic tags and overridden ones (O:) are printed for the reader;
# `lintian -i` on the .deb explains each tag.
set +e
lintian --fail-on error --display-info --pedantic --show-overrides --tag-display-limit 0 "$deb" 2>&1 |
	grep -v '^running with root privileges is not recommended!$' | tee "$work/lintian" >&2
lintian_rc=${PIPESTATUS[0]}
set -e
((lintian_rc == 0)) || die "lintian reported errors (exit $lintian_rc)"
grep -q '^E:' "$work/lintian" && die "lintian printed errors"
ok "lintian: no errors ($(grep -c '^W:' "$work/lintian" || true) warnings, $(grep -c '^O:' "$work/lintian" || true) overridden)"

# ---- 4. systemd-analyze -------------------------------------------------------
# verify checks that ExecStart*= binaries exist and that Documentation=man:
# pages are found: point both at the unpacked package.
mkdir "$work/unit"
for u in "$UNIT" "$MASTER_UNIT"; do
	sed "s|/usr/bin/sitebackup|$work/root/usr/bin/sitebackup|g" \
		"$work/root/usr/lib/systemd/system/$u" >"$work/unit/$u"
done
verify_unit() { # UNIT-FILE [MANPATH]
	local out
	out=$(env ${2:+MANPATH="$2"} systemd-analyze verify "$1" 2>&1) || die "systemd-analyze verify $1 failed: $out"
	[[ -z $out ]] || die "systemd-analyze verify $1 is not clean: $out"
}
for u in "$UNIT" "$MASTER_UNIT"; do
	verify_unit "$work/unit/$u" "$work/root/usr/share/man"
done
ok "systemd-analyze verify: clean ($UNIT, $MASTER_UNIT)"

for u in "$UNIT" "$MASTER_UNIT"; do
	security=$(systemd-analyze security --offline=true "$work/unit/$u" 2>&1) ||
		die "systemd-analyze security $u failed: $security"
	exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$security")
	[[ -n $exposure ]] || die "no exposure level for $u in: $security"
	printf '%s\n' "$security" | grep '✗' >&2 || true
	awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' ||
		die "$u: exposure level $exposure is above $MAX_EXPOSURE: hardening was weakened"
	ok "systemd-analyze security $u: exposure $exposure (limit $MAX_EXPOSURE); the lines above are what is left open"
done

# ---- 5. install / remove / purge ----------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
	if [[ ${SB_CHECK_DEB_ALLOW_SKIP:-0} == 1 ]]; then
		log "SKIPPED (SB_CHECK_DEB_ALLOW_SKIP=1): the unit's capability check and the dpkg install/remove/purge cycle need root (running as $(id -un))"
		exit 0
	fi
	die "the unit's capability check and the dpkg install/remove/purge cycle need root (running as $(id -un)); run as root, or set SB_CHECK_DEB_ALLOW_SKIP=1 to skip them knowingly"
fi

# The unit's capability choice, tested with setpriv (no systemd needed).
scripts/check-unit-caps.sh "$work/root/usr/lib/systemd/system/$UNIT"

leftovers=(
	/usr/bin/sitebackup
	/etc/sitebackup
	/var/lib/sitebackup
	"/usr/lib/systemd/system/$UNIT"
	"/lib/systemd/system/$UNIT"
	"/usr/lib/systemd/system/$MASTER_UNIT"
	"/etc/systemd/system/multi-user.target.wants/$MASTER_UNIT"
	/var/lib/sitebackup-master
	"/etc/systemd/system/multi-user.target.wants/$UNIT"
	"/etc/systemd/system/$UNIT"
	"/var/lib/systemd/deb-systemd-helper-enabled/$UNIT.dsh-also"
	"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/$UNIT"
	"/var/lib/systemd/deb-systemd-helper-masked/$UNIT"
	/usr/share/man/man1/sitebackup.1.gz
	/usr/share/bash-completion/completions/sitebackup
	/usr/share/zsh/vendor-completions/_sitebackup
	/usr/share/fish/vendor_completions.d/sitebackup.fish
	/usr/share/doc/sitebackup
)
status=$(dpkg-query -W -f '${db:Status-Status}' "$PKG" 2>/dev/null || true)
if [[ -n $status && $status != not-installed ]]; then
	die "$PKG is already on this machine (dpkg status: $status); this check would remove it. Remove it first (dpkg -P $PKG)."
fi
for p in /etc/sitebackup /var/lib/sitebackup /var/lib/sitebackup-master; do
	[[ ! -e $p ]] || die "$p exists before installing; this check would delete it on purge. Move it away first."
done

log "dpkg -i"
installed_by_us=1
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || {
	cat "$work/dpkg-i.log" >&2
	die "dpkg -i failed"
}
cat "$work/dpkg-i.log" >&2
grep -q 'installed and enabled, but not started' "$work/dpkg-i.log" ||
	die "dpkg -i did not say that the service is enabled but not started"

got_version=$(sitebackup --version)
[[ $got_version == "sitebackup $crate_version" ]] || die "sitebackup --version printed '$got_version'"
ok "installed; sitebackup --version: $got_version"

[[ $(stat -c %a /etc/sitebackup/sitebackup.env) == 600 ]] || die "sitebackup.env is not mode 0600"
[[ $(stat -c %a /etc/sitebackup/config.toml) == 600 ]] || die "config.toml is not mode 0600"
[[ $(stat -c %a /var/lib/sitebackup) == 700 ]] || die "/var/lib/sitebackup is not mode 0700"
[[ -L /etc/systemd/system/multi-user.target.wants/$UNIT ]] || die "the unit is not enabled"
[[ ! -e /etc/systemd/system/multi-user.target.wants/$MASTER_UNIT ]] || die "$MASTER_UNIT is enabled; it must not be"
man -w sitebackup >/dev/null || die "man cannot find sitebackup(1)"
man -w 5 sitebackup.toml >/dev/null || die "man cannot find sitebackup.toml(5)"
zgrep -qE '^\.SH "?EXIT STATUS"?$' /usr/share/man/man1/sitebackup.1.gz || die "sitebackup(1) has no EXIT STATUS"
zgrep -qE '^\.SH "?EXAMPLES"?$' /usr/share/man/man1/sitebackup.1.gz || die "sitebackup(1) has no EXAMPLES"
ok "modes 0600/0700, unit enabled, man page found"

# As installed, nothing is configured: config check refuses and names the
# missing server.
set +e
check_out=$(cd / && sitebackup config check 2>&1)
check_rc=$?
set -e
((check_rc == 2)) || die "config check on a fresh install exited $check_rc, expected 2: $check_out"
grep -q 'No S3 servers configured' <<<"$check_out" || die "config check did not name the missing server: $check_out"
ok "fresh install: config check exits 2 (No S3 servers configured)"

# The unit's ExecCondition on a fresh install: exit 1, which systemd takes
# as "skip the unit", not as a failure (no five failed starts at boot).
set +e
cond_out=$(cd / && sitebackup -q config check --systemd-condition 2>&1)
cond_rc=$?
set -e
((cond_rc == 1)) || die "config check --systemd-condition on a fresh install exited $cond_rc, expected 1: $cond_out"
grep -q 'not configured yet' <<<"$cond_out" || die "the unit's condition did not say why it skips: $cond_out"
ok "fresh install: the unit's ExecCondition skips it (exit 1, not configured yet)"

# The env-file route from the docs: one server in an env file is enough.
mkdir "$work/store"
printf 'S3_SERVER_1_TYPE=local\nS3_SERVER_1_PATH=%s\n' "$work/store" >"$work/test.env"
(cd / && sitebackup --env-file "$work/test.env" config check >"$work/check-ok.log" 2>&1) || {
	cat "$work/check-ok.log" >&2
	die "config check with a server in an env file failed"
}
ok "config check passes once an env file sets S3_SERVER_1_*"

verify_unit /usr/lib/systemd/system/$UNIT
verify_unit /usr/lib/systemd/system/$MASTER_UNIT
ok "systemd-analyze verify of the installed units: clean"

dpkg --verify "$PKG" || die "dpkg --verify $PKG reports changed files"
ok "dpkg --verify: installed files match the package's md5sums"

# Upgrade (here: the same version again) keeps the operator's edits to the
# conffiles without asking, and does not repeat the first-install message.
printf 'S3_SERVER_1_REGION=edited-by-operator\n' >>/etc/sitebackup/sitebackup.env
log "dpkg -i again (upgrade path)"
dpkg -i "$deb" >"$work/dpkg-upgrade.log" 2>&1 || {
	cat "$work/dpkg-upgrade.log" >&2
	die "dpkg -i over the installed package failed"
}
cat "$work/dpkg-upgrade.log" >&2
grep -qx 'S3_SERVER_1_REGION=edited-by-operator' /etc/sitebackup/sitebackup.env ||
	die "reinstalling replaced the operator's sitebackup.env"
[[ $(stat -c %a /etc/sitebackup/sitebackup.env) == 600 ]] || die "sitebackup.env lost mode 0600 on upgrade"
if grep -q 'installed and enabled, but not started' "$work/dpkg-upgrade.log"; then
	die "the first-install message was printed again on upgrade"
fi
ok "upgrade: edited conffile kept (0600), no first-install message"

# Files the operator and the daemon add must go on purge too.
printf 'secret\n' >/etc/sitebackup/s3-1.secret
printf 'catalog\n' >/var/lib/sitebackup/catalog.db

log "dpkg -r"
dpkg -r "$PKG" >&2
[[ ! -e /usr/bin/sitebackup ]] || die "/usr/bin/sitebackup is still there after dpkg -r"
[[ ! -e /usr/lib/systemd/system/$UNIT ]] || die "the unit is still there after dpkg -r"
[[ -f /etc/sitebackup/config.toml && -f /etc/sitebackup/sitebackup.env ]] ||
	die "dpkg -r removed the conffiles (only purge may)"
[[ -f /var/lib/sitebackup/catalog.db ]] || die "dpkg -r removed the catalog (only purge may)"
ok "removed: binary and unit gone, config and catalog kept"

log "dpkg -P"
dpkg -P "$PKG" >&2
installed_by_us=0
left=()
for p in "${leftovers[@]}"; do
	if [[ -e $p || -L $p ]]; then
		left+=("$p")
	fi
done
((${#left[@]} == 0)) || die "left behind after purge: ${left[*]}"
status=$(dpkg-query -W -f '${db:Status-Status}' "$PKG" 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] || die "dpkg still knows $PKG after purge (status: $status)"
ok "purged: nothing left (${#leftovers[@]} paths checked)"
log "all checks passed"
