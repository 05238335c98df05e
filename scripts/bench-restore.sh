#!/usr/bin/env bash
# Restore benchmark: `sitebackup restore` against the stock-tools pipeline
# `aws s3 cp s3://… - | zstd -d | tar -x`, on the same archive in the test
# Garage.
#
# Usage (with a running rig; scripts/test-env.sh start DIR, then . DIR/env):
#   scripts/bench-restore.sh [ROUNDS]        # default 3 rounds
# Environment:
#   SB_BENCH_TREE   the tree to back up and restore [the backup benchmark's
#                   ${SB_BENCH_DIR:-/tmp/sb-bench}/tree-x1 when scripts/bench.sh
#                   made one, else a simpler ~700 MB tree generated here]
#   SB_BENCH_RESTORE_DIR  scratch directory [a new mktemp -d, removed at the end]
#   SB_BENCH_MEDIA_MB / SB_BENCH_SQL_MB / SB_BENCH_PHP_MB   make-up of the
#                   generated tree [400 / 250 / 50]
#   SB_BENCH_LOCK   a lock file held (flock) while measuring, so that other
#                   heavy jobs using the same lock (builds) wait [none]
#   SITEBACKUP_BIN  binary to measure [target/release/sitebackup, built here]
#
# It backs the tree up once, then for each round times both restores (wall
# time, user+sys CPU, peak RSS via /usr/bin/time; for the pipeline, CPU is
# the whole pipeline's and RSS the largest single process's) and checks that
# both restored trees are identical. It prints the medians and the archive
# throughput in MB/s. The archive object and its checksum file are deleted
# at the end.
set -euo pipefail

rounds=${1:-3}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
: "${SB_TEST_S3_ENDPOINT:?start the rig and source its env first (scripts/test-env.sh start DIR; . DIR/env)}"
bucket=${SB_TEST_BUCKETS%% *}
media_mb=${SB_BENCH_MEDIA_MB:-400}
sql_mb=${SB_BENCH_SQL_MB:-250}
php_mb=${SB_BENCH_PHP_MB:-50}

if [[ -n ${SB_BENCH_RESTORE_DIR:-} ]]; then
	work=$SB_BENCH_RESTORE_DIR
	mkdir -p "$work"
	keep_work=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/sb-bench-restore.XXXXXX")
	keep_work=0
fi

bin=${SITEBACKUP_BIN:-}
if [[ -z $bin ]]; then
	(cd "$repo_root" && cargo build --release --quiet)
	bin=${CARGO_TARGET_DIR:-$repo_root/target}/release/sitebackup
fi

export AWS_ACCESS_KEY_ID=$SB_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SB_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=$SB_TEST_S3_REGION
unset AWS_CA_BUNDLE AWS_PROFILE
awscli() { aws --endpoint-url "$SB_TEST_S3_ENDPOINT" "$@"; }

site=${SB_BENCH_TREE:-}
shared_tree=${SB_BENCH_DIR:-/tmp/sb-bench}/tree-x1
if [[ -z $site && -d $shared_tree && -f $shared_tree.done ]]; then
	site=$shared_tree
fi
site=${site:-$work/site}
if [[ ! -d $site ]]; then
	echo "generating the tree in $site (${media_mb} MB media, ${sql_mb} MB SQL, ${php_mb} MB PHP)" >&2
	python3 - "$site" "$media_mb" "$sql_mb" "$php_mb" <<'PY'
import os, random, sys
root, media_mb, sql_mb, php_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(42)
MB = 1000 * 1000
def write(path, chunks):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for c in chunks:
            f.write(c)
# Media: incompressible, 10 MB files.
for i in range(max(1, media_mb // 10)):
    write(f"{root}/wp-content/uploads/2024/{i % 12 + 1:02}/media-{i:03}.bin",
          (rng.randbytes(MB) for _ in range(10)))
# SQL-like text: one dump-like file per 50 MB.
words = ["lorem", "ipsum", "wordpress", "post", "meta", "option", "draft", "publish", "comment", "user"]
for n in range(max(1, sql_mb // 50)):
    def rows():
        size = 0
        i = 0
        while size < 50 * MB:
            text = " ".join(rng.choice(words) for _ in range(12))
            line = f"INSERT INTO wp_posts VALUES ({i},{rng.randrange(1, 99)},'2024-01-{i % 28 + 1:02} 10:00:00','{text}','publish');\n".encode()
            size += len(line)
            i += 1
            yield line
    write(f"{root}/wp-content/backup-db/dump-{n}.sql", rows())
# PHP-like text: many small files in nested directories.
php_bytes = php_mb * MB
n = 0
while php_bytes > 0:
    body = "".join(f"<?php\n// {rng.choice(words)} {rng.choice(words)}\nfunction f_{n}_{k}($a) {{ return $a + {k}; }}\n" for k in range(rng.randrange(50, 400))).encode()
    write(f"{root}/wp-includes/mod{n % 40:02}/sub{n % 7}/file-{n:05}.php", [body])
    php_bytes -= len(body)
    n += 1
PY
fi
du -sh "$site" >&2

host=bench-restore-$$
cat >"$work/config.toml" <<EOF
host_id = "$host"
state_dir = "$work/state"

[upload]
part_size_mb = 16

[[sites]]
name = "bench"
path = "$site"

[sites.database]
enabled = false
EOF
export S3_SERVER_1_ENDPOINT=$SB_TEST_S3_ENDPOINT S3_SERVER_1_REGION=$SB_TEST_S3_REGION \
	S3_SERVER_1_ACCESS_KEY=$SB_TEST_S3_ACCESS_KEY S3_SERVER_1_SECRET_KEY=$SB_TEST_S3_SECRET_KEY \
	S3_SERVER_1_BUCKET=$bucket
sb() { "$bin" --config "$work/config.toml" "$@"; }

report=$(sb --json backup bench) || {
	echo "the backup failed: $report" >&2
	exit 1
}
key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["archive"]["key"])' <<<"$report")
size=$(awscli s3api head-object --bucket "$bucket" --key "$key" --query ContentLength --output text)
cleanup() {
	awscli s3 rm "s3://$bucket/$key" --quiet || true
	awscli s3 rm "s3://$bucket/$key.sha256" --quiet || true
	if [[ $keep_work == 0 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
echo "archive: $key, $size bytes" >&2

# measure NAME COMMAND...: append "wall cpu rss_kb" to $work/NAME.times
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$work/time.out" "$@" >/dev/null
	awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time.out" >>"$work/$name.times"
}
rm -f "$work"/*.times
if [[ -n ${SB_BENCH_LOCK:-} ]]; then
	exec 9>"$SB_BENCH_LOCK"
	flock 9
fi
for ((r = 1; r <= rounds; r++)); do
	rm -rf "$work/ours" "$work/theirs"
	measure sitebackup "$bin" --config "$work/config.toml" -q restore "$key" --to "$work/ours"
	mkdir "$work/theirs"
	measure pipeline sh -c "aws --endpoint-url '$SB_TEST_S3_ENDPOINT' s3 cp 's3://$bucket/$key' - | zstd -dq | tar -x -C '$work/theirs'"
	if ! diff -r --no-dereference "$work/ours/files" "$work/theirs/files" >/dev/null; then
		echo "round $r: the two restored trees differ" >&2
		exit 1
	fi
	echo "round $r done" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
report() {
	local name=$1 wall cpu rss
	wall=$(cut -d' ' -f1 "$work/$name.times" | median)
	cpu=$(cut -d' ' -f2 "$work/$name.times" | median)
	rss=$(cut -d' ' -f3 "$work/$name.times" | median)
	awk -v n="$name" -v w="$wall" -v c="$cpu" -v r="$rss" -v s="$size" \
		'BEGIN { printf "%-10s  wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB  %7.1f MB/s of archive\n", n, w, c, r / 1024, s / 1e6 / w }'
}
echo "restore of $site ($(du -sh "$site" | cut -f1)) from a $((size / 1000000)) MB archive, median of $rounds rounds:"
report sitebackup
report pipeline
