#!/bin/sh
# fuzz/run.sh -- the libFuzzer targets of mod_scep's core (what "make fuzz"
# runs) and their plain replay builds.
#
#   sh fuzz/run.sh [NAME...]          build with clang -fsanitize=fuzzer,
#                                     address,undefined and fuzz each target
#                                     for FUZZ_SECONDS (default 60); new
#                                     inputs are merged (-merge=1) into
#                                     fuzz/corpus/NAME, crashes kept in
#                                     fuzz/crashes/NAME/
#   sh fuzz/run.sh --replay [NAME...] build BUILD/fuzz-replay-NAME with the
#                                     project's compiler (gcc, no libFuzzer)
#                                     and run fuzz/corpus/NAME and
#                                     fuzz/crashes/NAME through it
#   sh fuzz/run.sh --build-replay [NAME...]   only build them
#   sh fuzz/run.sh --seeds            rewrite the seed-* files of the corpora
#                                     with build/scep-craft (make build first)
#
# Targets: pkimessage base64 csr json p7 (fuzz/fuzz_NAME.c).  The fuzzers
# compile src/scep_*.c themselves (libscep.a is gcc-built, without
# coverage); the replay builds link BUILD/libscep.a, with the sanitizers
# when it was built with SANITIZE=1.  BUILD is $SCEP_BUILD (the build
# directory: build, or build/asan for "make test SANITIZE=1"), default build.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_FLAGS (more libFuzzer
# options), FUZZ_CORPUS_MAX_KB (default 400: past this a target's corpus
# keeps its entries but takes no new ones), APXS, CC (replay compiler, else
# apxs -q CC), CLANG (default clang).

set -u
cd "$(dirname "$0")/.." || exit 1

ALL_TARGETS="pkimessage base64 csr json p7"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_CORPUS_MAX_KB=${FUZZ_CORPUS_MAX_KB:-400}
CLANG=${CLANG:-clang}
APXS=${APXS:-$(command -v apxs 2>/dev/null || echo /usr/bin/apxs)}
B=${SCEP_BUILD:-build}

die() {
    echo "fuzz/run.sh: $*" >&2
    exit 1
}

# bytes, not disk blocks, in KiB
corpus_kb() {
    cat "$1"/* 2>/dev/null | wc -c | awk '{ printf "%d", ($1 + 1023) / 1024 }'
}

mode=fuzz
case "${1:-}" in
    --replay)       mode=replay; shift ;;
    --build-replay) mode=build-replay; shift ;;
    --seeds)        mode=seeds; shift ;;
    -h|--help)      sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*)             die "unknown option $1 (--replay, --build-replay, --seeds)" ;;
esac
targets=${*:-$ALL_TARGETS}
for t in $targets; do
    [ -f "fuzz/fuzz_$t.c" ] || die "no target fuzz/fuzz_$t.c"
done

[ -x "$APXS" ] || die "apxs not found ($APXS): apt-get install apache2-dev"
apr_config=$("$APXS" -q APR_CONFIG)
apu_config=$("$APXS" -q APU_CONFIG)
APR_FLAGS="$($apr_config --cppflags) $($apr_config --includes) $($apu_config --includes)"
APR_LIBS="$($apu_config --link-ld) $($apr_config --link-ld)"
INC="-Iinclude -Isrc -Ifuzz"

# ---- seeds ------------------------------------------------------------------
if [ $mode = seeds ]; then
    [ -x "$B/scep-craft" ] || die "$B/scep-craft is missing: make build"
    tmp=$(mktemp -d) || exit 1
    "$B"/scep-craft seeds "$tmp" || { rm -rf "$tmp"; die "scep-craft seeds failed"; }
    for d in "$tmp"/*; do
        n=$(basename "$d")
        mkdir -p "fuzz/corpus/$n"
        rm -f "fuzz/corpus/$n"/seed-*
        cp "$d"/* "fuzz/corpus/$n/"
    done
    rm -rf "$tmp"
    for d in fuzz/corpus/*; do
        echo "fuzz/run.sh: $d: $(ls "$d" | wc -l) files, $(corpus_kb "$d") KiB"
    done
    exit 0
fi

# ---- replay builds ------------------------------------------------------------
build_replay() {
    name=$1
    out=$B/fuzz-replay-$name
    [ -f "$B/libscep.a" ] || die "$B/libscep.a is missing: make build"
    # up to date?
    if [ -x "$out" ] && [ -z "$(find fuzz/*.c fuzz/*.h "$B/libscep.a" src/*.h include/*.h \
                                   -newer "$out" 2>/dev/null | head -1)" ]; then
        return 0
    fi
    cc=${CC:-$("$APXS" -q CC)}
    san=""
    if nm "$B/libscep.a" 2>/dev/null | grep -q '__asan_'; then
        san="-fsanitize=address,undefined -fno-omit-frame-pointer"
    fi
    mkdir -p "$B"
    # shellcheck disable=SC2086
    $cc -O1 -g -Wall -Wextra -Werror $san $INC $APR_FLAGS \
        -o "$out.tmp.$$" fuzz/replay.c fuzz/fuzz_common.c "fuzz/fuzz_$name.c" \
        "$B/libscep.a" $APR_LIBS -lssl -lcrypto || {
        rm -f "$out.tmp.$$"
        die "cannot build $out"
    }
    mv -f "$out.tmp.$$" "$out"
}

if [ $mode = build-replay ] || [ $mode = replay ]; then
    rc=0
    for t in $targets; do
        build_replay "$t"
        [ $mode = build-replay ] && continue
        if "$B/fuzz-replay-$t" "fuzz/corpus/$t" "fuzz/crashes/$t" >"$B/fuzz-replay-$t.log" 2>&1; then
            echo "$t: $(tail -1 "$B/fuzz-replay-$t.log")"
        else
            echo "$t: FAILED ($B/fuzz-replay-$t.log):"
            tail -40 "$B/fuzz-replay-$t.log"
            rc=1
        fi
    done
    exit $rc
fi

# ---- fuzzing with clang ---------------------------------------------------------
command -v "$CLANG" >/dev/null 2>&1 || die "$CLANG not found: apt-get install clang"
fz=build/fuzz
mkdir -p "$fz/obj"
probe="$fz/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe"
"$CLANG" -fsanitize=fuzzer,address,undefined "$probe" -o "$fz/probe" 2>"$fz/probe.log" ||
    die "clang cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev): $(head -3 "$fz/probe.log")"

FZ_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -Wall $INC $APR_FLAGS"
objs=""
for src in src/scep_*.c fuzz/fuzz_common.c; do
    o="$fz/obj/$(basename "$src" .c).o"
    # shellcheck disable=SC2086
    if [ ! -f "$o" ] || [ -n "$(find "$src" src/*.h include/*.h fuzz/*.h -newer "$o" | head -1)" ]; then
        "$CLANG" $FZ_CFLAGS -c "$src" -o "$o" || die "cannot compile $src"
    fi
    objs="$objs $o"
done

rc=0
for t in $targets; do
    bin="$fz/fuzz_$t"
    # shellcheck disable=SC2086
    "$CLANG" $FZ_CFLAGS -fsanitize=fuzzer -o "$bin" "fuzz/fuzz_$t.c" $objs \
        $APR_LIBS -lssl -lcrypto || die "cannot link $bin"
    corpus="fuzz/corpus/$t"
    new="$fz/new-$t"
    crashes="fuzz/crashes/$t"
    mkdir -p "$corpus" "$new" "$crashes"
    rm -f "$new"/*
    echo "fuzz/run.sh: $t for ${FUZZ_SECONDS}s"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_FLAGS:-} \
        "$new" "$corpus" >"$fz/$t.log" 2>&1
    st=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+ +DONE' "$fz/$t.log" |
        sed "s/^/fuzz\/run.sh: $t: /"
    if [ $st -ne 0 ]; then
        echo "fuzz/run.sh: $t: exit $st, see $fz/$t.log; artifacts in $crashes:"
        ls -l "$crashes"
        grep -E 'ERROR: |runtime error:|SUMMARY' "$fz/$t.log" | head -5
        rc=1
    fi
    # keep what found new coverage, as long as the corpus stays small
    kb=$(corpus_kb "$corpus")
    if [ "$kb" -lt "$FUZZ_CORPUS_MAX_KB" ] && [ -n "$(ls "$new")" ]; then
        before=$(ls "$corpus" | wc -l)
        "$bin" -merge=1 -timeout=20 -rss_limit_mb=2048 "$corpus" "$new" \
            >"$fz/$t.merge.log" 2>&1 || echo "fuzz/run.sh: $t: merge failed, see $fz/$t.merge.log"
        echo "fuzz/run.sh: $t: corpus $before -> $(ls "$corpus" | wc -l) files, $(corpus_kb "$corpus") KiB"
    else
        echo "fuzz/run.sh: $t: corpus at ${kb} KiB (limit ${FUZZ_CORPUS_MAX_KB}): no new entries kept"
    fi
    rmdir "$crashes" 2>/dev/null || true
done
exit $rc
