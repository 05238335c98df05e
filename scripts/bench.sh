#!/usr/bin/env bash
# Benchmark of `sitebackup backup` (issue 3, "Benchmark" and "Targets").
#
# Usage: scripts/bench.sh [--scale N] [--rounds N] [--strict]
#
# It generates (once; cached) a WordPress-like tree of about 700 MiB: ~50 MiB
# of PHP/JS/CSS-like text, ~400 MiB of incompressible "media" under
# wp-content/uploads/YYYY/MM/ and ~250 MiB of mysqldump-like SQL that
# compresses ~4.5x. It then starts a private Garage (scripts/test-env.sh,
# which runs Garage with compression_level = "none"; the rig's MariaDB is
# started too but stays idle) and, for each round, measures with GNU time:
#
#   sitebackup   sitebackup backup bench              (to the bench Garage)
#   aws          tar -cf - . | zstd -3 -T0 | aws s3 cp - s3://…  (same Garage)
#   compress     tar -cf - . | zstd -3 -T0 > /dev/null  (compress-only floor)
#
# Garage deduplicates stored blocks, and a block it already holds costs it
# far less CPU than a new one. So that every upload is new data, as a real
# backup mostly is, a file .bench-nonce of random content and size is
# rewritten at the top of the tree before each command, and tar runs with
# --sort=name so that, as in sitebackup's walk, that file comes first and
# shifts everything after it.
#
# The order of the three rotates from round to round; `sync` runs before
# each, and the tree is read once beforehand so that all runs read it warm.
# On a shared machine, keep other heavy jobs off the CPUs while it measures
# (see SB_BENCH_LOCK): the targets compare wall times.
#
# It prints the median wall time, CPU seconds (user + sys) and peak RSS of
# each, Garage's own CPU seconds during each, the archive sizes, and the
# target ratios:
#
#   sitebackup wall / aws wall          <= 0.80
#   sitebackup CPU  / compress CPU      <= 1.15
#   sitebackup peak RSS                 <= 64 MiB
#   sitebackup peak RSS N× / 1×         <= 1.10   (only with --scale N, N > 1)
#
# Ratios are ratios of the medians. How the figures are taken:
#   - CPU of a pipeline is that of `bash -c 'PIPELINE'`: GNU time reports the
#     rusage of the waited-for child, which includes the CPU of every process
#     of the pipeline (bash waits for all of them).
#   - Peak RSS of a pipeline is the largest peak of any ONE of its processes
#     (Linux's ru_maxrss for a waited-for tree is a max, not a sum).
#   - Garage CPU is the growth of utime + stime in /proc/PID/stat of the
#     Garage server; it is not included in any command's CPU.
#
# Before the rounds, one unmeasured sitebackup run warms Garage up; its 1×
# archive is downloaded with aws and checked: SHA-256 and size against the
# command's --json report, zstd -t, manifest.json, and one tar entry per
# regular file of the tree.
#
# Options (and the environment variables that set the same):
#   --scale N    SB_BENCH_SCALE   also run on a tree N times larger and print
#                                 the peak-RSS ratio N×/1× [1: only 1×]
#   --rounds N   SB_BENCH_ROUNDS  rounds per tree [3]
#   --strict     SB_BENCH_STRICT=1  exit 2 when a target is missed
# Environment:
#   SB_BENCH_DIR   trees, rig and scratch files [/tmp/sb-bench]; keep it
#                  outside the repository. Trees are reused across runs.
#   SB_BENCH_BIN   the sitebackup binary [${CARGO_TARGET_DIR:-target}/release/sitebackup];
#                  build it first with `cargo build --release`
#   SB_BENCH_LOCK  a lock file held (flock) from rig start to the end, so that
#                  other heavy jobs using the same lock (builds) do not run
#                  during the measurement [none]
#   SB_GARAGE_S3_PORT, SB_GARAGE_RPC_PORT, SB_GARAGE_ADMIN_PORT,
#   SB_MARIADB_PORT   rig ports, as for scripts/test-env.sh [3900 3901 3903 3907]
#   SITEBACKUP_*   passed to sitebackup as usual (e.g. SITEBACKUP_ZSTD_THREADS,
#                  SITEBACKUP_PART_SIZE_MB, SITEBACKUP_UPLOAD_CONCURRENCY)
#
# Needs: python3, GNU tar, zstd, aws (awscli), /usr/bin/time (Debian `time`),
# garage and mariadb (scripts/install-deps.sh).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# Bump when the generator changes: cached trees of another version are rebuilt.
GEN_VERSION=1
BUCKET=sb-one
SITE=bench
MIB=1048576
NONCE=.bench-nonce

log() {
	printf '[bench] %s\n' "$*" >&2
}

die() {
	printf '[bench] ERROR: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

scale=${SB_BENCH_SCALE:-1}
rounds=${SB_BENCH_ROUNDS:-3}
strict=${SB_BENCH_STRICT:-0}
while (($# > 0)); do
	case $1 in
	--scale)
		(($# >= 2)) || die "--scale needs a value"
		scale=$2
		shift 2
		;;
	--scale=*)
		scale=${1#*=}
		shift
		;;
	--rounds)
		(($# >= 2)) || die "--rounds needs a value"
		rounds=$2
		shift 2
		;;
	--rounds=*)
		rounds=${1#*=}
		shift
		;;
	--strict)
		strict=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done
[[ $scale =~ ^[1-9][0-9]*$ ]] || die "--scale must be a positive whole number, found '$scale'"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive whole number, found '$rounds'"

bench_dir=${SB_BENCH_DIR:-/tmp/sb-bench}
mkdir -p "$bench_dir"
bench_dir=$(cd "$bench_dir" && pwd -P)
case $bench_dir/ in
"$repo_root"/*) die "SB_BENCH_DIR ($bench_dir) must be outside the repository" ;;
esac
sitebackup=${SB_BENCH_BIN:-${CARGO_TARGET_DIR:-$repo_root/target}/release/sitebackup}
[[ -x $sitebackup ]] || die "no sitebackup binary at $sitebackup: run \`cargo build --release\` or set SB_BENCH_BIN"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian package \`time\`)"
for tool in python3 tar zstd aws sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/install-deps.sh)"
done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed"

# ------------------------------------------------------------- the tree ---

# gen_tree SCALE: print the path of the tree of that scale, generating it
# when the cache has none of the current generator version.
gen_tree() {
	local n=$1
	local tree=$bench_dir/tree-x$n
	local stamp=$bench_dir/tree-x$n.done
	if [[ -d $tree && -f $stamp && $(<"$stamp") == "$GEN_VERSION" ]]; then
		log "using the cached tree $tree"
	else
		log "generating the ${n}x tree in $tree (once; about $((25 * n)) s)"
		rm -rf "$tree" "$tree.tmp" "$stamp" "$tree.bytes"
		mkdir -p "$tree.tmp"
		python3 - "$tree.tmp" "$n" <<'PY' >&2
"""Generate a WordPress-like tree for the sitebackup benchmark.

Run by scripts/bench.sh as: python3 - DEST SCALE

Deterministic (seeded) apart from mtimes. At scale 1: ~50 MB of PHP-like
text (core + plugins + themes), ~400 MB of incompressible media under
wp-content/uploads/YYYY/MM/, ~250 MB of SQL dump text. At scale N the
plugins, themes, media and SQL are N times as many (the core stays one
copy, as on a real site), so the tree is about N times larger.
"""

import itertools
import os
import random
import sys

MIB = 1024 * 1024

SYLLABLES = (
    "ka lo mi ne ra to su vi de pa ri co ba le ti mo an er in or us es al "
    "th ing ion ent pro con per tra ver sta gen"
).split()
ENGLISH = (
    "the of and to in is that for it as with was on be by this are or from at "
    "an have not but which they you were all one can had her there their has "
    "more will would when if what about up out so them some into other than "
    "then its only new time also after first way over most years these well "
    "post page site user plugin theme option setting content image widget menu "
    "comment category archive search link media block editor admin network "
    "filter action hook query cache request response value default field form"
).split()
PHP_TYPES = ("string", "int", "bool", "array", "WP_Post", "WP_Error", "mixed", "callable", "object", "float")


class Words:
    """Zipf-distributed words: common English words first, then made-up ones."""

    def __init__(self, rng, made_up=12000, exponent=1.07):
        vocab = list(ENGLISH)
        seen = set(vocab)
        while len(vocab) < len(ENGLISH) + made_up:
            w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        self.vocab = vocab
        self.cum = list(itertools.accumulate(1.0 / (i + 1) ** exponent for i in range(len(vocab))))
        self.rng = rng

    def take(self, n):
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=n)

    def text(self, n):
        return " ".join(self.take(n))

    def ident(self, parts=None):
        parts = parts or self.rng.choice((1, 2, 2, 3))
        return "_".join(self.take(parts))


# ------------------------------------------------------------------ PHP ---


def php_function(rng, w, indent):
    i = indent
    name = w.ident(rng.choice((2, 3)))
    params = [w.ident(rng.choice((1, 2))) for _ in range(rng.randint(0, 4))]
    out = [f"{i}/**", f"{i} * {w.text(rng.randint(4, 14)).capitalize()}.", f"{i} *"]
    if rng.random() < 0.5:
        out.append(f"{i} * {w.text(rng.randint(8, 30)).capitalize()}.")
        out.append(f"{i} *")
    out.append(f"{i} * @since {rng.randint(2, 6)}.{rng.randint(0, 9)}.{rng.randint(0, 3)}")
    out.append(f"{i} *")
    for p in params:
        out.append(f"{i} * @param {rng.choice(PHP_TYPES)} ${p} {w.text(rng.randint(3, 10)).capitalize()}.")
    out.append(f"{i} * @return {rng.choice(PHP_TYPES)} {w.text(rng.randint(2, 8)).capitalize()}.")
    out.append(f"{i} */")
    vis = "public " if indent else ""
    args = ", ".join(f"${p}" + (f" = {php_value(rng, w)}" if rng.random() < 0.3 else "") for p in params)
    out.append(f"{i}{vis}function {name}( {args} ) {{" if args else f"{i}{vis}function {name}() {{")
    for _ in range(rng.randint(3, 25)):
        out.extend(php_statement(rng, w, i + "\t", params))
    out.append(f"{i}\treturn ${rng.choice(params)};" if params else f"{i}\treturn {php_value(rng, w)};")
    out.append(f"{i}}}")
    out.append("")
    return out


def php_value(rng, w):
    k = rng.random()
    if k < 0.25:
        return f"'{w.ident()}'"
    if k < 0.45:
        return str(rng.randint(0, 1000))
    if k < 0.6:
        return rng.choice(("true", "false", "null", "array()", "''"))
    return f"${w.ident(1)}"


def php_statement(rng, w, i, params):
    var = f"${rng.choice(params)}" if params and rng.random() < 0.5 else f"${w.ident(rng.choice((1, 2)))}"
    k = rng.random()
    if k < 0.18:
        return [f"{i}if ( ! isset( {var}['{w.ident(1)}'] ) ) {{", f"{i}\t{var}['{w.ident(1)}'] = {php_value(rng, w)};", f"{i}}}"]
    if k < 0.32:
        return [f"{i}{var} = apply_filters( '{w.ident(2)}', {var}, {php_value(rng, w)} );"]
    if k < 0.42:
        return [f"{i}do_action( '{w.ident(2)}', {var} );"]
    if k < 0.52:
        return [f"{i}// {w.text(rng.randint(4, 16)).capitalize()}."]
    if k < 0.62:
        return [
            f"{i}foreach ( (array) {var} as ${w.ident(1)} => ${w.ident(1)} ) {{",
            f"{i}\t${w.ident(1)}[] = sanitize_text_field( ${w.ident(1)} );",
            f"{i}}}",
        ]
    if k < 0.72:
        return [
            f"{i}if ( is_wp_error( {var} ) ) {{",
            f"{i}\treturn new WP_Error( '{w.ident(2)}', __( '{w.text(rng.randint(3, 10)).capitalize()}.', '{w.ident(1)}' ) );",
            f"{i}}}",
        ]
    if k < 0.82:
        return [f"{i}{var} = $wpdb->get_results( $wpdb->prepare( \"SELECT * FROM $wpdb->{w.ident(1)} WHERE {w.ident(1)} = %s\", {var} ) );"]
    if k < 0.9:
        return [f"{i}echo '<div class=\"{w.ident(2)}\">' . esc_html( {var} ) . '</div>';"]
    return [f"{i}{var} = {w.ident(2)}( {var}, {php_value(rng, w)} );"]


def php_file(rng, w, target):
    lines = ["<?php", "/**", f" * {w.text(rng.randint(3, 8)).capitalize()}.", " *", f" * @package {w.ident(1).capitalize()}", " */", ""]
    size = 0
    klass = rng.random() < 0.5
    if klass:
        lines += [f"class {w.ident(2).title()} {{", ""]
    while size < target:
        chunk = php_function(rng, w, "\t" if klass else "")
        size += sum(len(x) + 1 for x in chunk)
        lines += chunk
    if klass:
        lines.append("}")
    return "\n".join(lines) + "\n"


def js_file(rng, w, target):
    parts = []
    size = 0
    while size < target:
        s = (
            f"function {w.ident(1)}({','.join(rng.choice('abcdefgh') for _ in range(rng.randint(0, 3)))})"
            f"{{var {rng.choice('abcdefg')}=\"{w.ident(2)}\";return {rng.randint(0, 99)}+\"{w.text(3)}\";}}"
        )
        size += len(s)
        parts.append(s)
    return ";".join(parts) + "\n"


def css_file(rng, w, target):
    parts = []
    size = 0
    while size < target:
        s = (
            f".{w.ident(2).replace('_', '-')} .{w.ident(1)} {{\n\tmargin: {rng.randint(0, 40)}px {rng.randint(0, 40)}px;\n"
            f"\tcolor: #{rng.randrange(16**6):06x};\n\tdisplay: {rng.choice(('block', 'flex', 'none', 'inline-block'))};\n}}\n"
        )
        size += len(s)
        parts.append(s)
    return "".join(parts)


def file_size(rng, mean):
    # Log-normal around the mean, clipped: lots of small files, a few big ones.
    return int(min(max(rng.lognormvariate(0, 1.0) * mean / 1.65, 200), mean * 12))


def write_code_tree(rng, w, root, budget):
    """Fill `root` with code files until `budget` bytes are written."""
    written = 0
    dirs = [root]
    count = 0
    while written < budget:
        if rng.random() < 0.12 or len(dirs) < 3:
            parent = rng.choice(dirs)
            d = os.path.join(parent, w.ident(1).replace("_", "-"))
            os.makedirs(d, exist_ok=True)
            dirs.append(d)
        d = rng.choice(dirs)
        kind = rng.random()
        if kind < 0.8:
            size, ext, gen = file_size(rng, 14000), "php", php_file
        elif kind < 0.9:
            size, ext, gen = file_size(rng, 20000), "js", js_file
        else:
            size, ext, gen = file_size(rng, 8000), "css", css_file
        text = gen(rng, w, size)
        name = f"{w.ident(rng.choice((1, 2))).replace('_', '-')}-{count}.{ext}"
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        written += len(text)
        count += 1
    return written, count


# ---------------------------------------------------------------- media ---


def write_media(rng, root, budget, first_year):
    """Incompressible files: a few large ones (video, PDF), many images."""
    written = 0
    n = 0
    big_budget = budget // 2
    while written < budget:
        year = first_year + (n // 60) % 8
        month = 1 + (n // 5) % 12
        d = os.path.join(root, "wp-content", "uploads", str(year), f"{month:02d}")
        os.makedirs(d, exist_ok=True)
        if written < big_budget:
            size, name = 10 * MIB, f"video-{n:05d}.mp4"
        else:
            size, name = int(min(max(rng.lognormvariate(0, 0.9) * 180_000, 15_000), 3 * MIB)), f"IMG_{n:05d}.jpg"
        size = min(size, budget - written) or 1
        with open(os.path.join(d, name), "wb") as f:
            f.write(rng.randbytes(size))
        written += size
        n += 1
    return written, n


# ------------------------------------------------------------------ SQL ---


def sql_str(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_date(rng):
    return f"'20{rng.randint(14, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}'"


def post_content(rng, w):
    blocks = []
    for _ in range(rng.randint(1, 12)):
        k = rng.random()
        if k < 0.7:
            blocks.append(f"<!-- wp:paragraph -->\n<p>{w.text(rng.randint(10, 90)).capitalize()}.</p>\n<!-- /wp:paragraph -->")
        elif k < 0.85:
            blocks.append(f"<!-- wp:heading -->\n<h2>{w.text(rng.randint(2, 7)).title()}</h2>\n<!-- /wp:heading -->")
        else:
            iid = rng.randint(1, 90000)
            blocks.append(
                f'<!-- wp:image {{"id":{iid},"sizeSlug":"large"}} -->\n<figure class="wp-block-image size-large">'
                f'<img src="https://example.com/wp-content/uploads/20{rng.randint(14, 24)}/{rng.randint(1, 12):02d}/IMG_{iid:05d}.jpg" '
                f'alt="" class="wp-image-{iid}"/></figure>\n<!-- /wp:image -->'
            )
    return "\n\n".join(blocks)


RECENT = []


def row_posts(rng, w, i):
    title = w.text(rng.randint(2, 9)).title()
    slug = title.lower().replace(" ", "-")
    typ = rng.choice(("post", "post", "page", "revision", "attachment", "nav_menu_item"))
    if typ == "revision" and RECENT:
        # A revision repeats a recent post with a small edit, as real ones do.
        content = rng.choice(RECENT) + f"\n\n<p>{w.text(rng.randint(3, 20)).capitalize()}.</p>"
    elif typ != "attachment":
        content = post_content(rng, w)
        RECENT.append(content)
        del RECENT[:-20]
    else:
        content = ""
    d = sql_date(rng)
    return (
        f"({i},{rng.randint(1, 20)},{d},{d},{sql_str(content)},{sql_str(title)},'',"
        f"'{rng.choice(('publish', 'publish', 'inherit', 'draft'))}','open','open','',"
        f"{sql_str(slug)},'','',{d},{d},'',0,'https://example.com/?p={i}',0,'{typ}','',0)"
    )


def row_postmeta(rng, w, i):
    key = rng.choice(
        ("_edit_lock", "_edit_last", "_wp_attached_file", "_thumbnail_id", "_wp_page_template", "_yoast_wpseo_focuskw")
        + ("_wp_attachment_metadata",) * 2
        + (f"_{w.ident(2)}",)
    )
    if key == "_wp_attachment_metadata":
        wd, ht = rng.randint(100, 4000), rng.randint(100, 3000)
        val = (
            f'a:5:{{s:5:"width";i:{wd};s:6:"height";i:{ht};s:4:"file";s:24:"20{rng.randint(14, 24)}/'
            f'{rng.randint(1, 12):02d}/IMG_{rng.randint(0, 99999):05d}.jpg";s:5:"sizes";a:3:{{'
            f's:9:"thumbnail";a:4:{{s:4:"file";s:22:"IMG_{i % 99999:05d}-150x150.jpg";s:5:"width";i:150;'
            f's:6:"height";i:150;s:9:"mime-type";s:10:"image/jpeg";}}'
            f's:6:"medium";a:4:{{s:4:"file";s:22:"IMG_{i % 99999:05d}-300x200.jpg";s:5:"width";i:300;'
            f's:6:"height";i:200;s:9:"mime-type";s:10:"image/jpeg";}}}}s:10:"image_meta";a:0:{{}}}}'
        )
    elif key == "_edit_lock":
        val = f"{rng.randint(1400000000, 1730000000)}:{rng.randint(1, 20)}"
    else:
        val = w.text(rng.randint(1, 6)) if rng.random() < 0.6 else str(rng.randint(0, 100000))
    return f"({i},{rng.randint(1, 200000)},'{key}',{sql_str(val)})"


def row_comments(rng, w, i):
    author = w.text(2).title()
    return (
        f"({i},{rng.randint(1, 200000)},{sql_str(author)},'{author.lower().replace(' ', '.')}@example.org','',"
        f"'10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}',{sql_date(rng)},{sql_date(rng)},"
        f"{sql_str(w.text(rng.randint(5, 80)).capitalize() + '.')},0,'{rng.choice(('1', '1', '0', 'spam'))}',"
        f"'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{rng.randint(90, 130)}.0.0.0 Safari/537.36',"
        f"'comment',0,0)"
    )


def row_options(rng, w, i):
    return f"({i},'{w.ident(3)}',{sql_str(w.text(rng.randint(1, 40)))},'{rng.choice(('yes', 'no'))}')"


TABLES = (
    ("wp_posts", row_posts, 0.55),
    ("wp_postmeta", row_postmeta, 0.2),
    ("wp_comments", row_comments, 0.2),
    ("wp_options", row_options, 0.05),
)


def write_sql(rng, w, path, budget):
    written = 0
    with open(path, "w") as f:
        def out(s):
            nonlocal written
            f.write(s)
            written += len(s)

        out("-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: localhost\n\n")
        out("/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\n")
        for table, row, share in TABLES:
            out(f"--\n-- Dumping data for table `{table}`\n--\n\nLOCK TABLES `{table}` WRITE;\n")
            out(f"/*!40000 ALTER TABLE `{table}` DISABLE KEYS */;\n")
            target = written + budget * share
            i = 1
            while written < target:
                rows = []
                size = 0
                while size < 900_000 and written + size < target:  # mysqldump's net_buffer_length-ish lines
                    r = row(rng, w, i)
                    rows.append(r)
                    size += len(r) + 1
                    i += 1
                out(f"INSERT INTO `{table}` VALUES " + ",".join(rows) + ";\n")
            out(f"/*!40000 ALTER TABLE `{table}` ENABLE KEYS */;\nUNLOCK TABLES;\n\n")
        out("-- Dump completed\n")
    return written


# ----------------------------------------------------------------- main ---


def main():
    dest, scale = sys.argv[1], int(sys.argv[2])
    rng = random.Random(20240601)
    w = Words(rng)
    total = 0
    files = 0
    # Core: one copy whatever the scale.
    for part, budget in (("wp-admin", 8 * MIB), ("wp-includes", 14 * MIB)):
        b, n = write_code_tree(rng, w, os.path.join(dest, part), budget)
        total += b
        files += n
    for k in range(scale):
        r = random.Random(1000 + k)
        wk = Words(r)
        for p in range(12):
            b, n = write_code_tree(r, wk, os.path.join(dest, "wp-content", "plugins", f"{wk.ident(1).replace('_', '-')}-{k}-{p}"), 2 * MIB)
            total += b
            files += n
        for t in range(2):
            b, n = write_code_tree(r, wk, os.path.join(dest, "wp-content", "themes", f"theme-{k}-{t}"), 2 * MIB)
            total += b
            files += n
        b, n = write_media(r, dest, 400 * MIB, 2015 + k)
        total += b
        files += n
        ws = Words(r, 6000, 1.15)  # tuned so that the dumps compress ~4.5x, like real ones
        dump_dir = os.path.join(dest, "wp-content", "backup-db")
        os.makedirs(dump_dir, exist_ok=True)
        for d in range(5):
            total += write_sql(r, ws, os.path.join(dump_dir, f"db-{k}-{d}.sql"), 50 * MIB)
            files += 1
    with open(os.path.join(dest, "wp-config.php"), "w") as f:
        f.write("<?php\ndefine( 'DB_NAME', 'wordpress' );\ndefine( 'DB_USER', 'wp' );\n$table_prefix = 'wp_';\nrequire_once ABSPATH . 'wp-settings.php';\n")
    os.symlink("wp-config.php", os.path.join(dest, "wp-config-link.php"))
    os.makedirs(os.path.join(dest, "wp-content", "cache"), exist_ok=True)
    print(f"generated {files} files, {total / MIB:.0f} MiB in {dest}")


if __name__ == "__main__":
    main()
PY
		mv "$tree.tmp" "$tree"
		printf '%s\n' "$GEN_VERSION" >"$stamp"
	fi
	# What the tree holds, for the report.
	find "$tree" -type f ! -name "$NONCE" -printf '%s %P\n' | awk -v mib="$MIB" '
		{ total += $1; n++ }
		$2 ~ /^wp-content\/uploads\// { media += $1; next }
		$2 ~ /\.sql$/ { sql += $1; next }
		{ code += $1 }
		END { printf "%d files, %.0f MiB (code %.0f MiB, media %.0f MiB, SQL %.0f MiB)\n",
			n, total / mib, code / mib, media / mib, sql / mib }' >"$tree.bytes"
	printf '%s\n' "$tree"
}

scales=(1)
((scale > 1)) && scales+=("$scale")
declare -A trees
for n in "${scales[@]}"; do
	trees[$n]=$(gen_tree "$n")
done

# ------------------------------------------------------------------ rig ---

if [[ -n ${SB_BENCH_LOCK:-} ]]; then
	log "waiting for the lock $SB_BENCH_LOCK"
	exec 9>>"$SB_BENCH_LOCK"
	flock 9
fi

rig=$bench_dir/rig
work=$bench_dir/work
rm -rf "$work"
mkdir -p "$work"
cleanup() {
	local rc=$?
	# Garage's data can reach several GB; the servers' logs are kept.
	if "$repo_root/scripts/test-env.sh" stop "$rig"; then
		rm -rf "$rig/garage" "$rig/mariadb"
	else
		rc=1
	fi
	rm -f "$work/verify.tar.zst"
	local n
	for n in "${!trees[@]}"; do
		rm -f "${trees[$n]}/$NONCE"
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$repo_root/scripts/test-env.sh" start "$rig"
# shellcheck disable=SC1091 # written by test-env.sh start
. "$rig/env"
grep -q '^compression_level = "none"' "$SB_TEST_GARAGE_CONFIG" ||
	die "the rig's Garage does not run with compression_level = \"none\""
garage_pid=$(<"$rig/garage.pid")

# aws: the rig's credentials, plain http, no profile or CA bundle of the caller.
unset AWS_CA_BUNDLE AWS_PROFILE AWS_SESSION_TOKEN
export AWS_ACCESS_KEY_ID=$SB_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SB_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=$SB_TEST_S3_REGION
export AWS_EC2_METADATA_DISABLED=true
endpoint=$SB_TEST_S3_ENDPOINT
awsb() {
	aws --endpoint-url "$endpoint" "$@"
}

# sitebackup: servers from the environment, the rest from a TOML file.
export S3_SERVER_1_ENDPOINT=$endpoint
export S3_SERVER_1_REGION=$SB_TEST_S3_REGION
export S3_SERVER_1_BUCKET=$BUCKET
export S3_SERVER_1_ACCESS_KEY=$SB_TEST_S3_ACCESS_KEY
export S3_SERVER_1_SECRET_KEY=$SB_TEST_S3_SECRET_KEY
export S3_SERVER_1_STORAGE_LIMIT_GB=10000
unset SITEBACKUP_CONFIG SITEBACKUP_HOST_ID SITEBACKUP_STATE_DIR

# write_config SCALE: the TOML file for the tree of that scale.
write_config() {
	local n=$1
	mkdir -p "$work/state-x$n"
	cat >"$work/config-x$n.toml" <<TOML
host_id = "bench-host"
state_dir = "$work/state-x$n"

[[sites]]
name = "$SITE"
path = "${trees[$n]}"

# The tree's wp-config.php is a stand-in: the benchmark measures files.
[sites.database]
enabled = false
TOML
}

# ----------------------------------------------------------- measuring ---

garage_ticks() {
	local stat
	stat=$(<"/proc/$garage_pid/stat")
	stat=${stat##*) } # fields from 3 on; the command name may hold spaces
	# shellcheck disable=SC2086 # split on purpose
	set -- $stat
	printf '%s\n' $((${12} + ${13})) # utime + stime (fields 14 and 15)
}
clk_tck=$(getconf CLK_TCK)

results=$work/results.tsv
printf 'scale\tcommand\tround\twall_s\tuser_s\tsys_s\tmaxrss_kib\tgarage_cpu_s\tarchive_bytes\n' >"$results"

# measure SCALE COMMAND ROUND ARCHIVE_BYTES_FN CMD...: run CMD under GNU
# time, record one line of results. ARCHIVE_BYTES_FN is called afterwards
# (with no argument) to print the archive size, or is "-".
measure() {
	local n=$1 name=$2 round=$3 size_fn=$4
	shift 4
	local tfile=$work/time.out g0 g1 line size=-
	# A new nonce file, first in name order, of random size: every upload is
	# new data from its first block on. Garage deduplicates blocks, and
	# storing a block it already holds costs it much less CPU than a new
	# one; without the nonce, repeated uploads of the same tree would be
	# measured against a Garage that writes almost nothing.
	head -c $((65536 + RANDOM * 29)) /dev/urandom >"${trees[$n]}/$NONCE"
	sync
	g0=$(garage_ticks)
	if ! /usr/bin/time -o "$tfile" -f '%e %U %S %M' "$@" >"$work/$name.out" 2>"$work/$name.err"; then
		tail -n 20 "$work/$name.err" >&2 || true
		die "$name (scale ${n}x, round $round) failed; see $work/$name.err"
	fi
	g1=$(garage_ticks)
	line=$(tail -n 1 "$tfile")
	[[ $size_fn == - ]] || size=$("$size_fn")
	# shellcheck disable=SC2086 # split on purpose
	set -- $line
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$name" "$round" "$1" "$2" "$3" "$4" \
		"$(awk -v t=$((g1 - g0)) -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }')" "$size" >>"$results"
	log "$(printf '%-10s %2sx round %s: wall %6ss  cpu %6.2fs  rss %6d MiB' "$name" "$n" "$round" "$1" \
		"$(awk -v u="$2" -v s="$3" 'BEGIN { print u + s }')" $(($4 / 1024)))"
}

sb_size() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["archive"]["size_bytes"])' \
		"$work/sitebackup.out"
}

aws_key=
aws_size() {
	awsb s3api head-object --bucket "$BUCKET" --key "$aws_key" --query ContentLength --output text
}

run_sitebackup() {
	local n=$1 round=$2
	measure "$n" sitebackup "$round" sb_size \
		"$sitebackup" --config "$work/config-x$n.toml" --json backup "$SITE"
	python3 - "$work/sitebackup.out" <<'PY' || die "sitebackup did not report one stored archive"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
assert len(r) == 1 and r[0]["outcome"] == "success" and r[0]["archive"], r
PY
}

run_aws() {
	local n=$1 round=$2
	aws_key=peer-x$n-$round.tar.zst
	# shellcheck disable=SC2016 # expanded by the inner bash
	measure "$n" aws "$round" aws_size bash -c 'set -o pipefail
		tar --sort=name -cf - -C "$1" . | zstd -3 -T0 -q | aws --endpoint-url "$2" s3 cp - "s3://$3/$4"' \
		bench "${trees[$n]}" "$endpoint" "$BUCKET" "$aws_key"
}

run_compress() {
	local n=$1 round=$2
	# shellcheck disable=SC2016 # expanded by the inner bash
	measure "$n" compress "$round" - bash -c 'set -o pipefail
		tar --sort=name -cf - -C "$1" . | zstd -3 -T0 -q >/dev/null' bench "${trees[$n]}"
}

# verify SCALE: download the last sitebackup archive and check it.
verify() {
	local n=$1 key sha size file=$work/verify.tar.zst
	local tree=${trees[$n]}
	read -r key sha size < <(python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["results"][0]["archive"]
print(a["key"], a["sha256"], a["size_bytes"])' "$work/sitebackup.out")
	log "verifying s3://$BUCKET/$key"
	awsb s3 cp --quiet "s3://$BUCKET/$key" "$file"
	[[ $(stat -c %s "$file") == "$size" ]] || die "downloaded size $(stat -c %s "$file") != reported $size"
	[[ $(sha256sum <"$file" | cut -d' ' -f1) == "$sha" ]] || die "downloaded SHA-256 differs from the reported $sha"
	zstd -q -t "$file" || die "zstd -t failed on the downloaded archive"
	local want got
	want=$(find "$tree" -type f | wc -l)
	got=$(zstd -dc "$file" | tar -tvf - | awk '$1 ~ /^-/ && $NF ~ /^files\// { n++ } END { print n + 0 }')
	[[ $got == "$want" ]] || die "the archive holds $got regular files under files/, the tree $want"
	zstd -dc "$file" | tar -tf - | grep -qx 'manifest.json' || die "no manifest.json in the archive"
	rm -f "$file"
	verified="s3://$BUCKET/$key: size $size, sha256 $sha, zstd -t ok, $got files + manifest.json"
	log "archive ok: $verified"
}

# ----------------------------------------------------------------- main ---

verified=
start_load=$(cut -d' ' -f1-3 /proc/loadavg)
for n in "${scales[@]}"; do
	write_config "$n"
	log "warming the page cache with the ${n}x tree"
	tar -cf - -C "${trees[$n]}" . | cat >/dev/null
	# An unmeasured first upload: a fresh Garage spends extra CPU on its
	# first writes, and the binary's pages get cached. Its archive is the
	# one checked.
	log "warm-up run of sitebackup (not counted)"
	run_sitebackup "$n" warmup
	[[ $n != 1 ]] || verify "$n"
	awsb s3 rm --quiet --recursive "s3://$BUCKET"
	cmds=(sitebackup compress aws)
	for ((round = 1; round <= rounds; round++)); do
		for ((i = 0; i < ${#cmds[@]}; i++)); do
			cmd=${cmds[$(((i + round - 1) % ${#cmds[@]}))]}
			"run_$cmd" "$n" "$round"
		done
		# Keep the bucket small: nothing is read back after the round.
		awsb s3 rm --quiet --recursive "s3://$BUCKET"
	done
done
end_load=$(cut -d' ' -f1-3 /proc/loadavg)

sb_env=$(env | grep -E '^SITEBACKUP_' | sort | tr '\n' ' ' || true)
python3 - "$results" "$scale" "$strict" <<PY
import csv, statistics, sys

rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["round"] != "warmup"]
big, strict = int(sys.argv[2]), sys.argv[3] == "1"
MIB = $MIB

def med(scale, cmd, f):
    return statistics.median(f(r) for r in rows if r["scale"] == str(scale) and r["command"] == cmd)

wall = lambda s, c: med(s, c, lambda r: float(r["wall_s"]))
cpu = lambda s, c: med(s, c, lambda r: float(r["user_s"]) + float(r["sys_s"]))
rss = lambda s, c: med(s, c, lambda r: int(r["maxrss_kib"]) / 1024)
gcpu = lambda s, c: med(s, c, lambda r: float(r["garage_cpu_s"]))
size = lambda s, c: med(s, c, lambda r: int(r["archive_bytes"]))

print()
print("sitebackup benchmark: $rounds round(s) per tree, medians")
print("binary:  $sitebackup ($("$sitebackup" --version 2>/dev/null || echo '?'))")
print("git:     $(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo '?')")
print("host:    $(nproc) CPUs; load average before $start_load, after $end_load")
print("tools:   $(zstd --version 2>/dev/null | head -n 1 | tr -d '*' | xargs); $(aws --version 2>&1 | cut -d' ' -f1); $(tar --version | head -n 1)")
print("env:     ${sb_env:-(no SITEBACKUP_* overrides)}")
missed = []
for s in sorted({int(r["scale"]) for r in rows}):
    print()
    print(f"tree {s}x: {open('$bench_dir/tree-x' + str(s) + '.bytes').read().strip()}")
    print(f"  {'command':<34} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'garage CPU s':>13} {'archive MiB':>12}")
    labels = {
        "sitebackup": "sitebackup backup",
        "aws": "tar | zstd -3 -T0 | aws s3 cp",
        "compress": "tar | zstd -3 -T0 > /dev/null",
    }
    for c in ("sitebackup", "aws", "compress"):
        arch = f"{size(s, c) / MIB:12.1f}" if c != "compress" else f"{'(= aws)':>12}"
        print(f"  {labels[c]:<34} {wall(s, c):8.2f} {cpu(s, c):8.2f} {rss(s, c):13.1f} {gcpu(s, c):13.2f} {arch}")
    checks = [
        ("wall  sitebackup / aws pipeline", wall(s, "sitebackup") / wall(s, "aws"), 0.80),
        ("CPU   sitebackup / compress-only", cpu(s, "sitebackup") / cpu(s, "compress"), 1.15),
        ("RSS   sitebackup peak (MiB)", rss(s, "sitebackup"), 64.0),
    ]
    if s > 1:
        checks.append((f"RSS   sitebackup {s}x / 1x", rss(s, "sitebackup") / rss(1, "sitebackup"), 1.10))
    print("  targets:")
    for label, value, limit in checks:
        ok = value <= limit
        if not ok:
            missed.append(f"{s}x {label}")
        print(f"    {label:<34} {value:8.2f}  (target <= {limit:.2f})  {'ok' if ok else 'MISSED'}")
print()
print("verified: ${verified:-(not run)}")
print("raw figures: $results")
if missed and strict:
    sys.exit(2)
PY
