# t/setup/sanitize.sh -- sourced by t/run-tests.sh (POSIX sh, set -u, from
# the top of the tree, before httpd starts).  Does nothing unless SANITIZE=1
# is in the environment ("make test SANITIZE=1": make exports variables set
# on its command line to the recipes).
#
# With SANITIZE=1 (everything built with -fsanitize=address,undefined):
#
#  * httpd: the system apache2 is not built with ASan, so the sanitized
#    mod_scep.so needs libasan preloaded.  build/sanitize-httpd is a wrapper
#    that sets LD_PRELOAD and the httpd's own ASAN_OPTIONS (detect_leaks=0:
#    APR pools and httpd's exit path make leak reports noise) and execs the
#    real httpd; t/TEST.PL, ScepProviders and ScepFarm start it instead of apxs' httpd when
#    SCEP_TEST_HTTPD is set.  Its reports go to stderr, that is to
#    t/logs/error_log.
#  * everything else built here (unit tests, scep-client, scep-craft, the
#    fuzz replay binaries): ASAN_OPTIONS with detect_leaks=1 and
#    UBSAN_OPTIONS, reports written to build/sanitizer/report.PID so that
#    t/98-sanitizer.t finds them whoever ran the program.
#
# Nothing else (perl, openssl, the interop clients, chromium) gets libasan.
# Variables are prefixed san_.  "build" below is $SCEP_BUILD, the build
# directory under test (build/asan when make sets SANITIZE=1).

if [ "${SANITIZE:-}" = 1 ]; then
    san_top=$(pwd)
    san_b=${SCEP_BUILD:-build}
    case $san_b in
        /*) ;;
        *)  san_b=$san_top/$san_b ;;
    esac
    san_cc=$("${apxs:-apxs}" -q CC 2>/dev/null || echo gcc)
    san_libasan=$($san_cc -print-file-name=libasan.so 2>/dev/null)
    san_httpd="$("${apxs:-apxs}" -q SBINDIR)/$("${apxs:-apxs}" -q TARGET)"

    if [ ! -f "$san_libasan" ]; then
        die "t/setup/sanitize.sh: $san_cc -print-file-name=libasan.so finds no libasan (apt-get install libasan8 or the libasan of your gcc)"
    fi
    # a build without the sanitizers would pass without checking anything
    if ! nm -D "$san_b/mod_scep.so" 2>/dev/null | grep -q '__asan_'; then
        die "t/setup/sanitize.sh: SANITIZE=1 but $san_b/mod_scep.so was built without it: make test SANITIZE=1 (it builds and tests build/asan)"
    fi

    mkdir -p "$san_b/sanitizer"
    rm -f "$san_b"/sanitizer/report.*

    # symbolize the stacks when llvm-symbolizer is around (gcc's libasan
    # uses it too); addr2line-style frames otherwise
    san_symbolizer=$(command -v llvm-symbolizer 2>/dev/null ||
                     ls /usr/bin/llvm-symbolizer-* 2>/dev/null | head -1)
    san_common="print_stacktrace=1${san_symbolizer:+:external_symbolizer_path=$san_symbolizer}"

    cat > "$san_b/sanitize-httpd" <<EOF
#!/bin/sh
# written by t/setup/sanitize.sh: the test httpd with libasan preloaded
LD_PRELOAD="$san_libasan\${LD_PRELOAD:+:\$LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:$san_common"
UBSAN_OPTIONS="halt_on_error=1:$san_common"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
exec "$san_httpd" "\$@"
EOF
    chmod 755 "$san_b/sanitize-httpd"
    SCEP_TEST_HTTPD="$san_b/sanitize-httpd"

    ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:$san_common:log_path=$san_b/sanitizer/report"
    LSAN_OPTIONS="print_suppressions=0"
    UBSAN_OPTIONS="halt_on_error=1:$san_common:log_path=$san_b/sanitizer/report"
    SCEP_SANITIZE=1
    export SCEP_TEST_HTTPD ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS SCEP_SANITIZE
    echo "t/setup/sanitize.sh: sanitizers on; httpd via $san_b/sanitize-httpd ($san_libasan preloaded)"
fi
