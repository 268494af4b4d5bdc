#!/bin/sh
# bench/scale.sh -- mod_scep with a large store ("make bench-scale"), about
# 12 minutes and 6 GB of disk under bench/work.  docs/performance.md
# ("Scaling with data", "Memory over 100,000 enrollments") explains the
# numbers.  Not part of "make test" or "make bench".
#
#  1. a SQLite store (conf/schema-sqlite3.sql) with a few real enrollments
#     of the benchmark PKI, then 1,000,000 rows in each of scep_password,
#     scep_transaction and scep_certificate (bench/scale-fill.sql: rows
#     shaped like the real ones, 100,000 certificates revoked and not
#     expired);
#  2. enrollments/s at c16 against an empty store and against the full one,
#     same httpd configuration as "make bench" (bench/conf.sh), alternating
#     empty, full, empty, full... so that the load of other jobs on the
#     machine falls on both; with the static challenge and with one-time
#     passwords (fetched from the admin page's JSON API); one pair of 5 s
#     runs first, not counted (the machine just wrote gigabytes);
#  3. the CRL with 100,000 revoked certificates: "scepadm cert revoke"
#     with the CA key (revokes one more and makes the new CRL at once, as
#     an administrator does), and the scep-crl handler of httpd after a
#     revocation the stored CRL does not hold yet (the reader regenerates);
#  4. 100,000 enrollments (static challenge, c16, 10 levels of 10,000)
#     against one fresh httpd, the RSS of its children sampled every 10 s;
#  5. bench/scale.json and a summary on stdout.
#
# Only loopback traffic; every step and loop is bounded in time and count.
#
# Environment:
#   BENCH_SCALE_PORT     httpd port on 127.0.0.1 (default 18473)
#   BENCH_SCALE_SECONDS  seconds per enrollment run in 2 (default 15)
#   BENCH_SCALE_ROUNDS   empty/full pairs per challenge in 2 (default 3)
#   BENCH_SCALE_MEMORY=0 skip 4
#   BENCH_SCALE_MEMORY_N enrollments in 4 (default 100000, in 10 levels)
#   BENCH_SCALE_KEEP=1   keep the 1M-row database (bench/work/scale-db)
#   BENCH_SCALE_OUT      the results file (default bench/scale.json)
#   APXS                 the apxs to ask for httpd (default: apxs on PATH)

set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
bench=$src/bench
cache=$bench/cache
work=$bench/work
port=${BENCH_SCALE_PORT:-18473}
secs=${BENCH_SCALE_SECONDS:-15}
rounds=${BENCH_SCALE_ROUNDS:-3}
do_mem=${BENCH_SCALE_MEMORY:-1}
mem_n=${BENCH_SCALE_MEMORY_N:-100000}
keep=${BENCH_SCALE_KEEP:-0}
gen=$src/build/scep-bench
adm=$src/build/scepadm
prio=
out=${BENCH_SCALE_OUT:-$bench/scale.json}

say() { printf 'bench-scale: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case $port$secs$rounds$mem_n in *[!0-9]*) die "numbers only" ;; esac
[ "$rounds" -ge 1 ] && [ "$rounds" -le 5 ] || die "BENCH_SCALE_ROUNDS: 1 to 5"
[ "$secs" -ge 2 ] && [ "$secs" -le 120 ] || die "BENCH_SCALE_SECONDS: 2 to 120"
[ "$mem_n" -ge 1000 ] && [ "$mem_n" -le 200000 ] ||
    die "BENCH_SCALE_MEMORY_N: 1000 to 200000"

# apxs, httpd, moddir; the configuration and start/stop of httpd
conf_crl=1
conf_db=
. "$bench/conf.sh"

say "building"
make -s -C "$src" --no-print-directory build/mod_scep.so build/scep-bench \
    build/scepadm >&2
bench_pki
url=http://127.0.0.1:$port/certsrv/mscep/mscep.dll
admin_url=http://127.0.0.1:$port/certsrv/mscep_admin/
crl_url=http://127.0.0.1:$port/crl/ca.crl
dbdir=$work/scale-db
fulldb=$dbdir/scep.db

httpd_dir=
sampler=
cleanup() {
    if [ -n "$sampler" ]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        sampler=
    fi
    stop_httpd
    if [ "$keep" != 1 ]; then
        rm -rf "$dbdir"
    fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# num FILE KEY -- the first number after "KEY": in a JSON file
num() {
    tr -d '\n' < "$1" | sed -n "s/.*\"$2\": \(-\{0,1\}[0-9.]*\).*/\1/p" |
        head -n 1
}
ornull() { [ -n "${1:-}" ] && echo "$1" || echo null; }
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
load1() { cut -d' ' -f1-3 /proc/loadavg; }

load_before=$(load1)
busy_before=$(busy_pct)
say "load average before: $load_before (${busy_before}% busy)"

# ---- 1. the full store ----------------------------------------------------------
# A few real enrollments first: their rows are the filler's templates.
say "the 1M-row store: a few real enrollments, then the filler"
rm -rf "$dbdir"
mkdir -p "$dbdir"
sqlite3 "$fulldb" < "$src/conf/schema-sqlite3.sql" >/dev/null
if [ -n "$run_user" ]; then
    chown -R "$run_user:$(id -gn "$run_user")" "$dbdir"
fi
conf_db=$fulldb
write_conf "$work/scale-full-static" static
start_httpd "$work/scale-full-static"
"$gen" enroll "$url" --cache "$cache" --concurrency 4 --seconds 2 --max 16 \
    --warmup 4 --challenge "$challenge" --label scale-seed \
    > "$work/scale-seed.json" || die "the seed enrollments failed"
stop_httpd
[ "$(sqlite3 "$fulldb" 'SELECT COUNT(*) FROM scep_certificate')" -gt 0 ] ||
    die "no certificate recorded by the seed enrollments"
t0=$(now_s)
sqlite3 "$fulldb" < "$bench/scale-fill.sql" >/dev/null
t1=$(now_s)
fill_s=$(elapsed "$t0" "$t1")
if [ -n "$run_user" ]; then
    chown -R "$run_user:$(id -gn "$run_user")" "$dbdir"
fi
# the kernel's writeback of those gigabytes must not fall on the
# measurements (it competes with the fsync of every commit)
sync
db_mb=$(( $(stat -c %s "$fulldb") / 1048576 ))
counts=$(sqlite3 -separator ' ' "$fulldb" "SELECT
    (SELECT COUNT(*) FROM scep_password),
    (SELECT COUNT(*) FROM scep_transaction),
    (SELECT COUNT(*) FROM scep_certificate),
    (SELECT COUNT(*) FROM scep_certificate WHERE status = 1
       AND not_after > CAST(strftime('%s', 'now') AS INTEGER))")
set -- $counts
n_pw=$1 n_tx=$2 n_cert=$3 n_revoked=$4
say "filled in ${fill_s} s: $n_pw passwords, $n_tx transactions," \
    "$n_cert certificates ($n_revoked revoked, not expired), ${db_mb} MB"

# the query plans of the statements an enrollment and the CRL use, as the
# module prepares them (no ANALYZE: the module never runs it)
ih=$(sqlite3 "$fulldb" 'SELECT issuer_hash FROM scep_certificate LIMIT 1')
sqlite3 "$fulldb" > "$work/scale-plans.txt" <<EOF
.print scep_pw_reserve
EXPLAIN QUERY PLAN UPDATE scep_password SET state = 1, reserved_at = 1, transaction_id = 'T' WHERE id = 1 AND hash = 'H' AND endpoint = 'default' AND expires > 1 AND (state = 0 OR (state = 1 AND (reserved_at < 1 OR transaction_id = 'T') AND NOT EXISTS (SELECT 1 FROM scep_transaction t WHERE t.endpoint = scep_password.endpoint AND t.transaction_id = scep_password.transaction_id AND t.state = 1)));
.print scep_pw_consume
EXPLAIN QUERY PLAN UPDATE scep_password SET state = 2, used_at = 1 WHERE hash = 'H' AND state = 1 AND transaction_id = 'T';
.print scep_pw_consume_id
EXPLAIN QUERY PLAN UPDATE scep_password SET state = 2, used_at = 1 WHERE id = 1 AND hash = 'H' AND state = 1 AND transaction_id = 'T';
.print scep_pw_settle
EXPLAIN QUERY PLAN UPDATE scep_password SET state = 2, used_at = 1 WHERE endpoint = 'default' AND state = 1 AND transaction_id = 'T';
.print scep_pw_count
EXPLAIN QUERY PLAN SELECT COUNT(*) FROM scep_password WHERE endpoint = 'default' AND state = 0 AND expires > 1;
.print scep_tx_get
EXPLAIN QUERY PLAN SELECT req_digest FROM scep_transaction WHERE endpoint = 'default' AND transaction_id = 'T';
.print scep_tx_issued
EXPLAIN QUERY PLAN UPDATE scep_transaction SET state = 1, certs = 'C', serial = 'S', updated = 1 WHERE endpoint = 'default' AND transaction_id = 'T';
.print scep_nonce_get
EXPLAIN QUERY PLAN SELECT seen FROM scep_nonce WHERE nonce = 'N';
.print scep_nonce_purge
EXPLAIN QUERY PLAN DELETE FROM scep_nonce WHERE seen < 1;
.print scep_cert_get
EXPLAIN QUERY PLAN SELECT serial, der FROM scep_certificate WHERE issuer_hash = '$ih' AND serial = 'S';
.print scep_cert_revoked
EXPLAIN QUERY PLAN $(sed -n '/"scep_cert_revoked",/,/}/p' "$src/src/scep_certstore.c" | sed -n 's/^ *"\(.*\)".*/\1/p' | tr -d '\n' | sed 's/" CERT_COLS "/serial, subject, not_before, not_after, status, revoked_at, reason, transaction_id, profile/; s/%s/'"'$ih'"'/; s/%lld/1/');
.print scep_cert_revoked_since
EXPLAIN QUERY PLAN SELECT COUNT(*) FROM scep_certificate WHERE issuer_hash = '$ih' AND status = 1 AND revoked_at >= 1;
.print scep_cert_list
EXPLAIN QUERY PLAN SELECT serial FROM scep_certificate WHERE issuer_hash = '$ih' ORDER BY not_before DESC, serial DESC LIMIT 1000;
EOF

# ---- 2. empty against full, alternating ------------------------------------------
# enroll_run CONF_DIR LABEL MODE -- one run at c16; the rate in $rate
enroll_run() {
    run_dir=$1 run_label=$2 run_f=$work/scale-$2.json
    if [ "$3" = otp ]; then
        set -- --otp "$admin_url" --otp-auth "admin:$admin_pw"
    else
        set -- --challenge "$challenge"
    fi
    start_httpd "$run_dir"
    "$gen" enroll "$url" --cache "$cache" --concurrency 16 \
        --seconds "$secs" --warmup 64 --label "$run_label" \
        --rss-ppid "$(httpd_pid)" "$@" > "$run_f" ||
        die "scep-bench failed on $run_dir (see $run_f)"
    stop_httpd
    rate=$(num "$run_f" best_enroll_per_s)
    [ -n "$rate" ] || die "no rate in $run_f"
    cpu=$(num "$run_f" server_cpu_ms_per_enroll)
    other=$(num "$run_f" other_cores)
}

rates_json() {
    printf '%s\n' "$@" | paste -sd, - | sed 's/^/[/; s/$/]/'
}
mean() {
    printf '%s\n' "$@" | awk '{ s += $1; n++ } END { if (n) printf "%.2f", s / n; else print "null" }'
}
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else print "null" }'; }

for mode in static otp; do
    empties= fulls= ecpu= fcpu= eoth= foth=
    conf_db=$fulldb
    write_conf "$work/scale-full-$mode" "$mode"
    # (not $i: start_httpd and stop_httpd count with it)
    if [ "$mode" = static ]; then
        # One pair not counted, right after the filler: the first runs
        # after writing gigabytes were the slowest (p99 of 100+ ms), empty
        # store or not.
        say "$mode: warm-up (not counted), empty store then 1M-row store"
        conf_db=
        write_conf "$work/scale-empty-$mode" "$mode"
        secs_run=$secs secs=5
        enroll_run "$work/scale-empty-$mode" "warmup-empty-$mode" "$mode"
        enroll_run "$work/scale-full-$mode" "warmup-full-$mode" "$mode"
        secs=$secs_run
    fi
    round=1
    while [ $round -le "$rounds" ]; do
        conf_db=
        write_conf "$work/scale-empty-$mode" "$mode"
        say "$mode: round $round/$rounds, empty store"
        enroll_run "$work/scale-empty-$mode" "empty-$mode-$round" "$mode"
        e=$rate ecpu="$ecpu $cpu" eoth="$eoth $other"
        say "$mode: round $round/$rounds, 1M-row store"
        enroll_run "$work/scale-full-$mode" "full-$mode-$round" "$mode"
        f=$rate fcpu="$fcpu $cpu" foth="$foth $other"
        say "$mode: empty $e/s, full $f/s"
        empties="$empties $e"
        fulls="$fulls $f"
        round=$((round + 1))
    done
    eval "${mode}_empty=\"$empties\" ${mode}_full=\"$fulls\""
    eval "${mode}_ecpu=\"$ecpu\" ${mode}_fcpu=\"$fcpu\""
    eval "${mode}_eoth=\"$eoth\" ${mode}_foth=\"$foth\""
done
conf_db=

s_e=$(mean $static_empty) s_f=$(mean $static_full)
o_e=$(mean $otp_empty) o_f=$(mean $otp_full)
s_r=$(ratio "$s_f" "$s_e")
o_r=$(ratio "$o_f" "$o_e")
# the server's CPU time per enrollment: what other jobs on the machine
# change least (they take CPU time away, they do not add to this)
s_ec=$(mean $static_ecpu) s_fc=$(mean $static_fcpu)
o_ec=$(mean $otp_ecpu) o_fc=$(mean $otp_fcpu)
s_cr=$(ratio "$s_ec" "$s_fc")
o_cr=$(ratio "$o_ec" "$o_fc")
say "static: empty $s_e/s, full $s_f/s (ratio $s_r; CPU ms $s_ec, $s_fc);" \
    "otp: empty $o_e/s, full $o_f/s (ratio $o_r; CPU ms $o_ec, $o_fc)"

# ---- 3. the CRL with 100,000 revoked ---------------------------------------------
say "CRL: scepadm cert revoke with the CA key (3 times)"
crl_times=
crl_entries= crl_bytes=
serials=$(sqlite3 "$fulldb" "SELECT serial FROM scep_certificate
    WHERE issuer_hash = '$ih' AND status = 0
      AND not_after > CAST(strftime('%s', 'now') AS INTEGER) + 86400
    ORDER BY rowid DESC LIMIT 3")
for s in $serials; do
    rm -f "$work/scale-crl.der"
    t0=$(now_s)
    "$adm" cert revoke "$s" --dbd "sqlite3:$fulldb" --ca "$pki/ca.pem" \
        --ca-key "$pki/ca.key" --reason superseded \
        --crl-out "$work/scale-crl.der" > "$work/scale-revoke.txt" ||
        die "scepadm cert revoke $s failed"
    t1=$(now_s)
    crl_times="$crl_times $(elapsed "$t0" "$t1")"
    crl_entries=$(sed -n 's/^CRL number [0-9]*, \([0-9]*\) revoked.*/\1/p' \
        "$work/scale-revoke.txt")
    crl_bytes=$(stat -c %s "$work/scale-crl.der")
done
if [ -n "$run_user" ]; then
    chown -R "$run_user:$(id -gn "$run_user")" "$dbdir"
fi
crl_med=$(printf '%s\n' $crl_times | sort -n | sed -n 2p)
say "scepadm cert revoke: $crl_times s ($crl_entries entries, $crl_bytes bytes)"

# through httpd: one revocation newer than the stored CRL (as from a node
# without the CA key), so the first reader makes the CRL
say "CRL: the scep-crl handler after a revocation"
s=$(sqlite3 "$fulldb" "SELECT serial FROM scep_certificate
    WHERE issuer_hash = '$ih' AND status = 0
      AND not_after > CAST(strftime('%s', 'now') AS INTEGER) + 86400
    ORDER BY rowid DESC LIMIT 1")
sqlite3 "$fulldb" "PRAGMA busy_timeout = 5000;
    UPDATE scep_certificate SET status = 1, reason = 1,
        revoked_at = (SELECT this_update FROM scep_crl
                      WHERE issuer_hash = '$ih')
    WHERE issuer_hash = '$ih' AND serial = '$s'" >/dev/null
start_httpd "$work/scale-full-static"
t_regen=$(curl -s -o "$work/scale-crl-httpd.der" -m 120 \
    -w '%{http_code} %{time_total}' "$crl_url")
t_again=$(curl -s -o /dev/null -m 120 -w '%{http_code} %{time_total}' \
    "$crl_url")
stop_httpd
case $t_regen in 200\ *) ;; *) die "scep-crl answered $t_regen" ;; esac
t_regen=${t_regen#* } t_again=${t_again#* }
httpd_entries=$(openssl crl -inform DER -in "$work/scale-crl-httpd.der" \
    -noout -text | grep -c 'Serial Number:' || true)
httpd_bytes=$(stat -c %s "$work/scale-crl-httpd.der")
say "scep-crl: made in ${t_regen} s ($httpd_entries entries, $httpd_bytes" \
    "bytes), then served in ${t_again} s"

if [ "$keep" != 1 ]; then
    rm -rf "$dbdir"
fi

# ---- 4. memory over 100,000 enrollments --------------------------------------------
mem_json=null
if [ "$do_mem" = 1 ]; then
    per=$((mem_n / 10))
    say "memory: $mem_n enrollments at c16 (10 levels of $per), RSS every 10 s"
    write_conf "$work/scale-mem" static
    start_httpd "$work/scale-mem"
    kids=$(httpd_children)
    samples=$work/scale-mem-samples.txt
    : > "$samples"
    # at most 120 samples (20 minutes), and only while the generator runs
    (
        t0=$(date +%s)
        k=0
        while [ $k -lt 120 ] && [ -e "$work/scale-mem.running" ]; do
            line=$(( $(date +%s) - t0 ))
            tot=0
            for p in $(echo "$kids" | tr ',' ' '); do
                kb=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' \
                    "/proc/$p/status" 2>/dev/null || true)
                kb=${kb:-0}
                tot=$((tot + kb))
                line="$line $p:$kb"
            done
            # the last rowid: the count without reading the table
            n=$(sqlite3 "$work/scale-mem/db/scep.db" \
                'PRAGMA busy_timeout = 2000; SELECT max(rowid) FROM scep_certificate' \
                2>/dev/null | tail -n 1 || true)
            echo "$line total:$tot enrolled:${n:-0}" >> "$samples"
            k=$((k + 1))
            sleep 10
        done
    ) &
    sampler=$!
    : > "$work/scale-mem.running"
    "$gen" enroll "$url" --cache "$cache" \
        --concurrency 16,16,16,16,16,16,16,16,16,16 --seconds 60 \
        --max "$per" --warmup 64 --challenge "$challenge" \
        --label scale-mem --verify 5 --rss-ppid "$(httpd_pid)" \
        > "$work/scale-mem.json" || die "scep-bench failed (memory run)"
    rm -f "$work/scale-mem.running"
    wait "$sampler" 2>/dev/null || true
    sampler=
    # one last sample after the load
    line=end tot=0
    for p in $(echo "$kids" | tr ',' ' '); do
        kb=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$p/status" \
            2>/dev/null || true)
        kb=${kb:-0}
        tot=$((tot + kb))
        line="$line $p:$kb"
    done
    echo "$line total:$tot enrolled:$(sqlite3 "$work/scale-mem/db/scep.db" \
        'SELECT COUNT(*) FROM scep_certificate')" >> "$samples"
    stop_httpd
    mem_json=$(awk '
        { t = $1; tot = ""; enr = ""; kids = ""
          for (i = 2; i <= NF; i++) {
              split($i, a, ":")
              if (a[1] == "total") tot = a[2]
              else if (a[1] == "enrolled") enr = a[2]
              else kids = kids (kids == "" ? "" : ", ") "\"" a[1] "\": " a[2]
          }
          printf "%s{\"t\": %s, \"enrolled\": %s, \"total_kb\": %s, \"per_child_kb\": {%s}}",
              (NR > 1 ? ",\n    " : ""), (t == "end" ? "\"end\"" : t),
              enr, tot, kids }
        END { print "" }' "$samples")
    mem_json="[
    $mem_json]"
fi

load_after=$(load1)
busy_after=$(busy_pct)

# ---- 5. results -------------------------------------------------------------------
# mode_json NAME EMPTIES FULLS EMPTY_MEAN FULL_MEAN RATIO ECPUS FCPUS
#           ECPU_MEAN FCPU_MEAN CPU_RATIO EOTHERS FOTHERS -- the object of one
# challenge mode in scale.json (lists are space-separated)
mode_json() {
    printf '"%s": {"empty_enroll_per_s": %s, "full_enroll_per_s": %s, "empty_mean": %s, "full_mean": %s, "ratio": %s, "within_10pct": %s,\n    "empty_server_cpu_ms_per_enroll": %s, "full_server_cpu_ms_per_enroll": %s, "empty_cpu_mean": %s, "full_cpu_mean": %s, "cpu_ratio": %s, "cpu_within_10pct": %s,\n    "empty_other_cores": %s, "full_other_cores": %s},\n' \
        "$1" "$(rates_json $2)" "$(rates_json $3)" "$4" "$5" "$6" "$(within "$6")" \
        "$(rates_json $7)" "$(rates_json $8)" "$9" "${10}" "${11}" "$(within "${11}")" \
        "$(rates_json ${12})" "$(rates_json ${13})"
}
within() { awk -v r="$1" 'BEGIN { if (r == "null") print "null"; else print (r + 0 >= 0.9) ? "true" : "false" }'; }
{
    printf '{\n'
    printf '"date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '"machine": {"cpus": %s, "cpu": "%s", "load_before": "%s", "load_after": "%s", "busy_pct_before": %s, "busy_pct_after": %s},\n' \
        "$(nproc)" "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)" \
        "$load_before" "$load_after" "$busy_before" "$busy_after"
    printf '"store": {"passwords": %s, "transactions": %s, "certificates": %s, "revoked_on_crl": %s, "megabytes": %s, "fill_seconds": %s},\n' \
        "$n_pw" "$n_tx" "$n_cert" "$n_revoked" "$db_mb" "$fill_s"
    printf '"seconds_per_run": %s, "concurrency": 16,\n' "$secs"
    mode_json static "$static_empty" "$static_full" "$s_e" "$s_f" "$s_r" \
        "$static_ecpu" "$static_fcpu" "$s_ec" "$s_fc" "$s_cr" \
        "$static_eoth" "$static_foth"
    mode_json otp "$otp_empty" "$otp_full" "$o_e" "$o_f" "$o_r" \
        "$otp_ecpu" "$otp_fcpu" "$o_ec" "$o_fc" "$o_cr" \
        "$otp_eoth" "$otp_foth"
    printf '"crl": {"scepadm_revoke_seconds": %s, "scepadm_revoke_median_s": %s, "entries": %s, "der_bytes": %s, "httpd_regenerate_seconds": %s, "httpd_entries": %s, "httpd_der_bytes": %s, "httpd_served_again_seconds": %s},\n' \
        "$(rates_json $crl_times)" "$(ornull "$crl_med")" \
        "$(ornull "$crl_entries")" "$(ornull "$crl_bytes")" \
        "$(ornull "$t_regen")" "$(ornull "$httpd_entries")" \
        "$(ornull "$httpd_bytes")" "$(ornull "$t_again")"
    printf '"query_plans": %s,\n' "$(awk '{ gsub(/"/, "\\\""); printf "%s\"%s\"", (NR > 1 ? ", " : ""), $0 } END { print "" }' "$work/scale-plans.txt" | sed 's/^/[/; s/$/]/')"
    if [ "$do_mem" = 1 ]; then
        printf '"memory": {"enrollments": %s, "levels": "10 x %s at c16", "generator": %s,\n  "samples": %s}\n' \
            "$mem_n" "$per" "$(cat "$work/scale-mem.json")" \
            "$mem_json"
    else
        printf '"memory": null\n'
    fi
    printf '}\n'
} > "$out.tmp"
mv -f "$out.tmp" "$out"

{
    echo
    echo "mod_scep with a large store ($(nproc) CPUs, c16, ${secs} s a run, load $load_before -> $load_after)"
    printf '  store: %s passwords, %s transactions, %s certificates (%s on the CRL), %s MB, filled in %s s\n' \
        "$n_pw" "$n_tx" "$n_cert" "$n_revoked" "$db_mb" "$fill_s"
    printf '  static challenge  empty %s  full %s  -> %s/s vs %s/s, ratio %s\n' \
        "$static_empty" "$static_full" "$s_e" "$s_f" "$s_r"
    printf '                    server CPU ms/enrollment %s vs %s, ratio %s\n' \
        "$s_ec" "$s_fc" "$s_cr"
    printf '  one-time pw       empty %s  full %s  -> %s/s vs %s/s, ratio %s\n' \
        "$otp_empty" "$otp_full" "$o_e" "$o_f" "$o_r"
    printf '                    server CPU ms/enrollment %s vs %s, ratio %s\n' \
        "$o_ec" "$o_fc" "$o_cr"
    printf '  CRL (scepadm)     %s s (median %s), %s entries, %s bytes\n' \
        "$crl_times" "$crl_med" "$crl_entries" "$crl_bytes"
    printf '  CRL (scep-crl)    made in %s s (%s entries, %s bytes), again %s s\n' \
        "$t_regen" "$httpd_entries" "$httpd_bytes" "$t_again"
    if [ "$do_mem" = 1 ]; then
        echo "  memory of the httpd children (s, enrolled, kB):"
        awk '{ for (i = 2; i <= NF; i++) { split($i, a, ":"); if (a[1] == "total") t = a[2]; if (a[1] == "enrolled") e = a[2] }
               printf "    %5s %7s %8s\n", $1, e, t }' "$work/scale-mem-samples.txt"
    fi
    echo "  results: $out"
}
