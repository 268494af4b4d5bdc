#!/bin/sh
# bench/run.sh -- the mod_scep benchmark ("make bench"), about 3.5 minutes.
# docs/performance.md explains the numbers.
#
#  1. builds what it needs (build/mod_scep.so, build/scep-bench) and a
#     benchmark PKI (tools/mkpki.sh, cached in bench/cache/pki; the client
#     key pool is cached in bench/cache too);
#  2. the RSA bound: RSA-2048 private operations per second on 2 threads,
#     divided by the 3 an enrollment costs (RA decrypt, CA sign, RA sign);
#     measured again at the end;
#  3. mod_scep in httpd (event MPM, 2 children of 64 threads, generated
#     config under bench/work/), static challenge and the SQLite store:
#     GetCACert against a static file of the same bytes from the same httpd,
#     PKCSReq at each concurrency with the RSS and CPU time of the httpd
#     children, SHA-1 + DES at c16 (scepserver's algorithms), the same
#     without the store (SCEPStore none) at c16, and a profile of the
#     children under load (perf, when it is there);
#  4. variants of 3: PRAGMA synchronous = NORMAL (c1, c16), one child (c16);
#  5. SCEPChallenge otp (passwords fetched in bulk from the admin page's
#     JSON API before each level);
#  6. micromdm's scepserver (Debian package scep) with the same generator,
#     SHA-1 + DES, in a network namespace with only loopback (it binds all
#     interfaces);
#  7. bench/results.json and a summary on stdout.
#
# Only loopback traffic; every step is bounded in time and count.
#
# Environment:
#   BENCH_PORT            httpd port on 127.0.0.1 (default 18471)
#   BENCH_SCEPSERVER_PORT scepserver port in its namespace (default 18472)
#   BENCH_SECONDS         seconds per concurrency level (default 5)
#   BENCH_CONCURRENCY     levels (default 1,4,16,64)
#   BENCH_PERF=0          no perf profile
#   BENCH_SCEPSERVER=0    skip scepserver
#   BENCH_NICE            run the servers and the generator under nice -n
#                         BENCH_NICE (e.g. -10 on a machine that other jobs
#                         keep busy; recorded in results.json)
#   APXS                  the apxs to ask for httpd (default: apxs on PATH)

set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
bench=$src/bench
cache=$bench/cache
work=$bench/work
port=${BENCH_PORT:-18471}
sport=${BENCH_SCEPSERVER_PORT:-18472}
secs=${BENCH_SECONDS:-5}
levels=${BENCH_CONCURRENCY:-1,4,16,64}
do_perf=${BENCH_PERF:-1}
do_scepserver=${BENCH_SCEPSERVER:-1}
gen=$src/build/scep-bench
nice_n=${BENCH_NICE:-}
prio=
if [ -n "$nice_n" ]; then
    case $nice_n in -[0-9]*|[0-9]*) ;; *) echo "bench: BENCH_NICE: a number" >&2; exit 1 ;; esac
    prio="nice -n $nice_n"
fi
ns=scepbench$$
results=$bench/results.json

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case $port$sport in *[!0-9]*) die "ports must be numbers" ;; esac

# apxs, httpd, moddir; write_conf, start_httpd, stop_httpd, httpd_pid,
# httpd_children, busy_pct
conf_crl=0
. "$bench/conf.sh"

# ---- 1. build, PKI ----------------------------------------------------------
say "building"
make -s -C "$src" --no-print-directory build/mod_scep.so build/scep-bench >&2
[ -x "$gen" ] || die "$gen was not built"
bench_pki

# ---- clean-up on every path ---------------------------------------------------
httpd_dir=
scep_pid=
netns_made=
cleanup() {
    stop_httpd
    if [ -n "$scep_pid" ]; then
        kill "$scep_pid" 2>/dev/null || true
        wait "$scep_pid" 2>/dev/null || true
        scep_pid=
    fi
    if [ -n "$netns_made" ]; then
        ip netns del "$ns" 2>/dev/null || true
        netns_made=
    fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM


url=http://127.0.0.1:$port/certsrv/mscep/mscep.dll
common="--cache $cache --concurrency $levels --seconds $secs"

# ---- 2. RSA bound -------------------------------------------------------------
busy_before=$(busy_pct)
if [ "$busy_before" -gt 10 ]; then
    say "warning: the machine is ${busy_before}% busy before the benchmark;" \
        "the numbers will be low"
fi
say "RSA bound (2 threads, 3 s)"
$prio "$gen" rsa --cache "$cache" --threads 2 --seconds 3 > "$work/rsa1.json"

# ---- 3. mod_scep, static challenge, SQLite store -------------------------------
say "mod_scep: static challenge, SQLite store (127.0.0.1:$port)"
write_conf "$work/httpd-static" static
start_httpd "$work/httpd-static"
curl -s -o "$httpd_dir/htdocs/cacert.p7" "$url?operation=GetCACert&message=CA"
curl -s -o "$work/getcacert.der" "http://127.0.0.1:$port/cacert.p7"
cmp -s "$httpd_dir/htdocs/cacert.p7" "$work/getcacert.der" ||
    die "the static copy of GetCACert does not come back the same"
$prio "$gen" get "$url" --label getcacert --concurrency "$levels" --seconds 2 \
    --query 'operation=GetCACert&message=CA' --rss-ppid "$(httpd_pid)" \
    > "$work/getcacert.json"
$prio "$gen" get "http://127.0.0.1:$port/cacert.p7" --label static \
    --concurrency "$levels" --seconds 2 --query '' --rss-ppid "$(httpd_pid)" \
    > "$work/static.json"
$prio "$gen" enroll "$url" $common --challenge "$challenge" --label mod_scep \
    --rss-ppid "$(httpd_pid)" > "$work/enroll-static.json"
$prio "$gen" enroll "$url" --cache "$cache" --concurrency 16 --seconds "$secs" \
    --challenge "$challenge" --cipher des --digest sha1 --label mod_scep-des \
    --warmup 32 --rss-ppid "$(httpd_pid)" > "$work/enroll-des.json"
$prio "$gen" enroll "http://127.0.0.1:$port/nostore/mscep" --cache "$cache" \
    --concurrency 16 --seconds "$secs" --challenge "$challenge" \
    --label mod_scep-nostore --warmup 32 --rss-ppid "$(httpd_pid)" \
    > "$work/enroll-nostore.json"

perf_done=0
: > "$work/perf-dso.txt"
: > "$work/perf-sym.txt"
if [ "$do_perf" = 1 ] && command -v perf >/dev/null 2>&1; then
    say "profiling the httpd children under load (c16, perf)"
    kids=$(httpd_children)
    if [ -n "$kids" ]; then
        # DWARF call graphs: libcrypto has no symbols of its internal
        # functions here, so time is charged to the exported callers
        perf record -q -F 499 --call-graph dwarf,16384 \
            -o "$work/perf.data" -p "$kids" -- sleep $((secs + 4)) \
            >/dev/null 2>&1 &
        perf_pid=$!
        $prio "$gen" enroll "$url" --cache "$cache" --concurrency 16 \
            --seconds "$secs" --challenge "$challenge" --label perf \
            --warmup 0 --verify 0 > "$work/enroll-perf.json" || true
        wait "$perf_pid" || true
        if [ -s "$work/perf.data" ]; then
            perf report -i "$work/perf.data" --stdio --no-children \
                --sort dso -g none 2>/dev/null | grep -v '^#' | grep '%' \
                > "$work/perf-dso.txt" || true
            perf report -i "$work/perf.data" --stdio --children \
                --sort sym -g none 2>/dev/null | grep -v '^#' |
                grep -E '^ +[0-9.]+% +[0-9.]+%' | grep -v '\] 0x' \
                > "$work/perf-sym.txt" || true
            perf_done=1
        fi
    fi
fi
stop_httpd

# ---- 4a. the same store without an fsync at each commit -------------------
say "mod_scep: static challenge, SQLite with synchronous = NORMAL"
write_conf "$work/httpd-sync-normal" sync-normal
start_httpd "$work/httpd-sync-normal"
$prio "$gen" enroll "$url" --cache "$cache" --concurrency 1,16 --seconds "$secs" \
    --challenge "$challenge" --label mod_scep-sync-normal --warmup 32 \
    --rss-ppid "$(httpd_pid)" > "$work/enroll-sync-normal.json"
stop_httpd

# ---- 4b. the same store with one child process -----------------------------
say "mod_scep: static challenge, SQLite, one httpd child"
write_conf "$work/httpd-one-child" one-child
start_httpd "$work/httpd-one-child"
$prio "$gen" enroll "$url" --cache "$cache" --concurrency 16 --seconds "$secs" \
    --challenge "$challenge" --label mod_scep-one-child --warmup 32 \
    --rss-ppid "$(httpd_pid)" > "$work/enroll-one-child.json"
stop_httpd

# ---- 5. mod_scep, one-time passwords ---------------------------------------------
say "mod_scep: one-time passwords (SCEPChallenge otp, SQLite)"
write_conf "$work/httpd-otp" otp
start_httpd "$work/httpd-otp"
$prio "$gen" enroll "$url" $common --label mod_scep-otp \
    --otp "http://127.0.0.1:$port/certsrv/mscep_admin/" \
    --otp-auth "admin:$admin_pw" --rss-ppid "$(httpd_pid)" \
    > "$work/enroll-otp.json"
stop_httpd

# ---- 6. micromdm scepserver ---------------------------------------------------------
scep_ok=0
if [ "$do_scepserver" = 1 ] && command -v scepserver >/dev/null 2>&1; then
    say "micromdm scepserver (SHA-1 + DES)"
    depot=$work/scepserver-depot
    rm -rf "$depot"
    scepserver ca -init -depot "$depot" -keySize 2048 >/dev/null 2>&1 ||
        die "scepserver ca -init failed"
    runner=
    if ip netns add "$ns" 2>/dev/null; then
        netns_made=1
        ip netns exec "$ns" ip link set lo up
        runner="ip netns exec $ns"
        say "scepserver runs in network namespace $ns (loopback only)"
    else
        say "warning: no network namespace (not root?): scepserver binds" \
            "all interfaces; the generator only talks to 127.0.0.1"
    fi
    $runner $prio scepserver -depot "$depot" -port "$sport" -challenge secret \
        -allowrenew 0 > "$work/scepserver.log" 2>&1 &
    scep_pid=$!
    i=0
    until $runner curl -s -o /dev/null -m 2 \
        "http://127.0.0.1:$sport/scep?operation=GetCACaps"; do
        i=$((i + 1))
        [ $i -lt 100 ] || die "scepserver does not answer"
        sleep 0.1
    done
    $runner $prio "$gen" enroll "http://127.0.0.1:$sport/scep" $common \
        --challenge secret --cipher des --digest sha1 --label scepserver \
        --server-pid "$scep_pid" > "$work/enroll-scepserver.json" &&
        scep_ok=1
    kill "$scep_pid" 2>/dev/null || true
    wait "$scep_pid" 2>/dev/null || true
    scep_pid=
    if [ -n "$netns_made" ]; then
        ip netns del "$ns" 2>/dev/null || true
        netns_made=
    fi
else
    say "scepserver skipped"
fi

# ---- 7. the RSA bound again, results ------------------------------------------------
$prio "$gen" rsa --cache "$cache" --threads 2 --seconds 3 > "$work/rsa2.json"
busy_after=$(busy_pct)

# num FILE KEY -- the first number after "KEY": in a JSON file
num() {
    tr -d '\n' < "$1" | sed -n "s/.*\"$2\": \(-\{0,1\}[0-9.]*\).*/\1/p" |
        head -n 1
}
# level FILE C KEY -- KEY of the level with concurrency C
level() {
    tr -d '\n' < "$1" | sed 's/},/}\n/g' |
        grep "\"concurrency\": $2," | grep "\"exhausted\"" | head -n 1 |
        sed -n "s/.*\"$3\": \(-\{0,1\}[0-9.]*\).*/\1/p"
}
max() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "null" }'; }
ornull() { [ -n "${1:-}" ] && echo "$1" || echo null; }

rsa1=$(num "$work/rsa1.json" rsa_bound_enroll_per_s)
rsa2=$(num "$work/rsa2.json" rsa_bound_enroll_per_s)
rsa_bound=$(max "$rsa1" "$rsa2")
enroll=$(num "$work/enroll-static.json" best_enroll_per_s)
enroll_c=$(num "$work/enroll-static.json" best_concurrency)
otp=$(num "$work/enroll-otp.json" best_enroll_per_s)
des=$(num "$work/enroll-des.json" best_enroll_per_s)
nostore=$(num "$work/enroll-nostore.json" best_enroll_per_s)
syncn=$(level "$work/enroll-sync-normal.json" 16 enroll_per_s)
onechild=$(num "$work/enroll-one-child.json" best_enroll_per_s)
scep=null
[ "$scep_ok" = 1 ] && scep=$(num "$work/enroll-scepserver.json" best_enroll_per_s)
getca=$(num "$work/getcacert.json" best_per_s)
static=$(num "$work/static.json" best_per_s)
p50=$(level "$work/enroll-static.json" 16 p50_ms)
p99=$(level "$work/enroll-static.json" 16 p99_ms)
rss_b=$(num "$work/enroll-static.json" kb_before)
rss_a=$(num "$work/enroll-static.json" kb_after)
rss_n=$(num "$work/enroll-static.json" enrollments_between)
orss_b=$(num "$work/enroll-otp.json" kb_before)
orss_a=$(num "$work/enroll-otp.json" kb_after)
orss_n=$(num "$work/enroll-otp.json" enrollments_between)
srss_b= srss_a=
if [ "$scep_ok" = 1 ]; then
    srss_b=$(num "$work/enroll-scepserver.json" kb_before)
    srss_a=$(num "$work/enroll-scepserver.json" kb_after)
fi

# CPU time per enrollment (server processes only): what the numbers would
# be on an otherwise idle machine if nothing but the CPU limited them
rsa_ms=$(awk -v a="$(num "$work/rsa1.json" cpu_ms_per_op)" \
    -v b="$(num "$work/rsa2.json" cpu_ms_per_op)" \
    'BEGIN { m = (a + 0 > 0 && (a + 0 < b + 0 || b + 0 <= 0)) ? a : b;
             printf "%.3f", 3 * m }')
cpu_static=$(level "$work/enroll-static.json" 16 server_cpu_ms_per_enroll)
cpu_nostore=$(level "$work/enroll-nostore.json" 16 server_cpu_ms_per_enroll)
cpu_syncn=$(level "$work/enroll-sync-normal.json" 16 server_cpu_ms_per_enroll)
cpu_otp=$(level "$work/enroll-otp.json" 16 server_cpu_ms_per_enroll)
cpu_scep=
[ "$scep_ok" = 1 ] &&
    cpu_scep=$(level "$work/enroll-scepserver.json" 1 server_cpu_ms_per_enroll)
ncpu=$(nproc)
capacity() { awk -v m="${1:-0}" -v n="$ncpu" 'BEGIN { if (m + 0 > 0) printf "%.0f", n * 1000 / m; else print "null" }'; }
cpu_json() {
    printf '{"rsa_ms_per_enroll": %s, "rsa_share": %s, "cpu_ms_per_enroll": %s, "cpu_capacity_enroll_per_s": %s}' \
        "$rsa_ms" "$(ratio "$rsa_ms" "$1")" "$(ornull "$1")" "$(capacity "$1")"
}
r_scep=$(ratio "$enroll" "$scep")
r_rsa=$(ratio "$enroll" "$rsa_bound")
r_static=$(ratio "$getca" "$static")
r_p99=$(ratio "$p99" "$p50")
met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
    if (v == "null" || v == "") { print "null"; exit }
    if (op == ">=") print (v + 0 >= t + 0) ? "true" : "false"
    else print (v + 0 <= t + 0) ? "true" : "false" }'; }
rss_growth=$(awk -v a="${rss_a:-0}" -v b="${rss_b:-0}" -v n="${rss_n:-0}" \
    'BEGIN { if (n > 0) printf "%.2f", (a - b) / n * 1000; else print "null" }')

perf_dso_json=null
perf_sym_json=null
if [ "$perf_done" = 1 ]; then
    perf_dso_json=$(head -n 12 "$work/perf-dso.txt" | awk '
        { gsub(/"/, ""); sub(/^ +/, ""); printf "%s\"%s\"", (NR > 1 ? ", " : ""), $0 }
        END { print "" }' | sed 's/^/[/; s/$/]/')
    perf_sym_json=$(head -n 30 "$work/perf-sym.txt" | awk '
        { gsub(/"/, ""); sub(/^ +/, ""); gsub(/  +/, " ");
          printf "%s\"%s\"", (NR > 1 ? ", " : ""), $0 }
        END { print "" }' | sed 's/^/[/; s/$/]/')
fi

{
    printf '{\n'
    printf '"date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '"machine": {"cpus": %s, "cpu": "%s", "kernel": "%s", "openssl": "%s", "httpd": "%s", "busy_pct_before": %s, "busy_pct_after": %s},\n' \
        "$(nproc)" \
        "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)" \
        "$(uname -r)" "$(openssl version | cut -d' ' -f1-2)" \
        "$("$httpd" -v | sed -n 's/^Server version: //p')" \
        "$busy_before" "$busy_after"
    printf '"seconds_per_level": %s,\n' "$secs"
    printf '"nice": %s,\n' "${nice_n:-0}"
    printf '"enroll_per_s": %s,\n' "$(ornull "$enroll")"
    printf '"enroll_best_concurrency": %s,\n' "$(ornull "$enroll_c")"
    printf '"otp_enroll_per_s": %s,\n' "$(ornull "$otp")"
    printf '"des_sha1_enroll_per_s_c16": %s,\n' "$(ornull "$des")"
    printf '"nostore_enroll_per_s_c16": %s,\n' "$(ornull "$nostore")"
    printf '"sync_normal_enroll_per_s_c16": %s,\n' "$(ornull "$syncn")"
    printf '"one_child_enroll_per_s_c16": %s,\n' "$(ornull "$onechild")"
    printf '"scepserver_enroll_per_s": %s,\n' "$(ornull "$scep")"
    printf '"scepserver_rss_kb_before": %s, "scepserver_rss_kb_after": %s,\n' \
        "$(ornull "$srss_b")" "$(ornull "$srss_a")"
    printf '"rsa_bound_enroll_per_s": %s,\n' "$(ornull "$rsa_bound")"
    printf '"getcacert_per_s": %s,\n' "$(ornull "$getca")"
    printf '"static_per_s": %s,\n' "$(ornull "$static")"
    printf '"p50_ms_c16": %s,\n' "$(ornull "$p50")"
    printf '"p99_ms_c16": %s,\n' "$(ornull "$p99")"
    printf '"rss_kb_children_before": %s, "rss_kb_children_after": %s, "rss_enrollments_between": %s, "rss_kb_growth_per_1000_enrollments": %s,\n' \
        "$(ornull "$rss_b")" "$(ornull "$rss_a")" "$(ornull "$rss_n")" "$rss_growth"
    printf '"otp_rss_kb_children_before": %s, "otp_rss_kb_children_after": %s, "otp_rss_enrollments_between": %s,\n' \
        "$(ornull "$orss_b")" "$(ornull "$orss_a")" "$(ornull "$orss_n")"
    printf '"cpu": {\n'
    printf '  "note": "server CPU time per enrollment (c16; scepserver c1) and what %s idle CPUs would do at that cost",\n' "$ncpu"
    printf '  "rsa_bound_idle_enroll_per_s": %s,\n' "$(capacity "$rsa_ms")"
    printf '  "mod_scep": %s,\n' "$(cpu_json "$cpu_static")"
    printf '  "mod_scep_nostore": %s,\n' "$(cpu_json "$cpu_nostore")"
    printf '  "mod_scep_sync_normal": %s,\n' "$(cpu_json "$cpu_syncn")"
    printf '  "mod_scep_otp": %s,\n' "$(cpu_json "$cpu_otp")"
    printf '  "scepserver": %s\n' "$(cpu_json "$cpu_scep")"
    printf '},\n'
    printf '"targets": {\n'
    printf '  "enroll_vs_scepserver": {"ratio": %s, "want": ">= 3", "met": %s},\n' "$r_scep" "$(met "$r_scep" 3 '>=')"
    printf '  "enroll_vs_rsa_bound": {"ratio": %s, "want": ">= 0.6", "met": %s},\n' "$r_rsa" "$(met "$r_rsa" 0.6 '>=')"
    printf '  "getcacert_vs_static": {"ratio": %s, "want": ">= 0.9", "met": %s},\n' "$r_static" "$(met "$r_static" 0.9 '>=')"
    printf '  "p99_vs_p50_c16": {"ratio": %s, "want": "<= 3", "met": %s}\n' "$r_p99" "$(met "$r_p99" 3 '<=')"
    printf '},\n'
    printf '"profile_dso": %s,\n' "$perf_dso_json"
    printf '"profile_inclusive": %s,\n' "$perf_sym_json"
    printf '"rsa": [%s, %s],\n' "$(cat "$work/rsa1.json")" "$(cat "$work/rsa2.json")"
    printf '"getcacert": %s,\n' "$(cat "$work/getcacert.json")"
    printf '"static": %s,\n' "$(cat "$work/static.json")"
    printf '"mod_scep": %s,\n' "$(cat "$work/enroll-static.json")"
    printf '"mod_scep_des_sha1": %s,\n' "$(cat "$work/enroll-des.json")"
    printf '"mod_scep_nostore": %s,\n' "$(cat "$work/enroll-nostore.json")"
    printf '"mod_scep_sync_normal": %s,\n' "$(cat "$work/enroll-sync-normal.json")"
    printf '"mod_scep_one_child": %s,\n' "$(cat "$work/enroll-one-child.json")"
    printf '"mod_scep_otp": %s,\n' "$(cat "$work/enroll-otp.json")"
    if [ "$scep_ok" = 1 ]; then
        printf '"scepserver": %s\n' "$(cat "$work/enroll-scepserver.json")"
    else
        printf '"scepserver": null\n'
    fi
    printf '}\n'
} > "$results.tmp"
mv -f "$results.tmp" "$results"

# ---- summary ---------------------------------------------------------------------
table() {
    printf '  %-4s %9s %9s %9s %12s %12s %12s\n' conc 'enroll/s' 'p50 ms' \
        'p99 ms' 'server CPUs' 'CPU ms/enr' 'other CPUs'
    for c in $(echo "$levels" | tr ',' ' '); do
        printf '  c%-3s %9s %9s %9s %12s %12s %12s\n' "$c" \
            "$(level "$1" "$c" enroll_per_s)" "$(level "$1" "$c" p50_ms)" \
            "$(level "$1" "$c" p99_ms)" "$(level "$1" "$c" server_cores)" \
            "$(level "$1" "$c" server_cpu_ms_per_enroll)" \
            "$(level "$1" "$c" other_cores)"
    done
}
{
    echo
    echo "mod_scep benchmark ($(nproc) CPUs, RSA 2048, SQLite, no TLS; ${secs} s per level)"
    echo "mod_scep, static challenge + SQLite store:"
    table "$work/enroll-static.json"
    echo "mod_scep, one-time passwords (SQLite):"
    table "$work/enroll-otp.json"
    if [ "$scep_ok" = 1 ]; then
        echo "micromdm scepserver (SHA-1 + DES):"
        table "$work/enroll-scepserver.json"
    fi
    echo
    printf '  enroll_per_s            %s (c%s)\n' "$enroll" "$enroll_c"
    printf '  otp_enroll_per_s        %s\n' "$otp"
    printf '  mod_scep SHA-1+DES c16  %s\n' "$des"
    printf '  mod_scep no store c16   %s\n' "$nostore"
    printf '  SQLite sync=NORMAL c16  %s\n' "$syncn"
    printf '  one httpd child c16     %s\n' "$onechild"
    printf '  scepserver_enroll_per_s %s   ratio %s (want >= 3)\n' "$scep" "$r_scep"
    printf '  rsa_bound_enroll_per_s  %s   ratio %s (want >= 0.6)\n' "$rsa_bound" "$r_rsa"
    printf '  getcacert_per_s         %s\n' "$getca"
    printf '  static_per_s            %s   ratio %s (want >= 0.9)\n' "$static" "$r_static"
    printf '  p50/p99 at c16          %s / %s ms   ratio %s (want <= 3)\n' "$p50" "$p99" "$r_p99"
    printf '  httpd children RSS      %s -> %s kB over %s enrollments (%s kB per 1000)\n' \
        "$rss_b" "$rss_a" "$rss_n" "$rss_growth"
    printf '  CPU busy before/after   %s%% / %s%%\n' "$busy_before" "$busy_after"
    printf '  server CPU ms/enrollment  mod_scep %s (no store %s, sync=NORMAL %s, otp %s), scepserver %s; RSA %s\n' \
        "$cpu_static" "$cpu_nostore" "$cpu_syncn" "$cpu_otp" "${cpu_scep:-?}" "$rsa_ms"
    echo "  results: $results"
}
