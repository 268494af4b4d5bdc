#!/bin/sh
# t/run-tests.sh APXS -- the whole mod_scep test suite (what "make test" runs).
#
#  1. a fresh test PKI in t/pki (tools/mkpki.sh) plus a "next CA" for
#     GetNextCACert;
#  2. t/TEST from t/TEST.PL (Apache::Test, remembers -apxs), then
#     "t/TEST -start-httpd": httpd with $SCEP_BUILD/mod_scep.so and
#     t/conf/extra.conf;
#  3. ONE prove over the C unit tests ($SCEP_BUILD/t/test_*) and t/*.t (or
#     the files of $SCEP_TESTS);
#  4. "t/TEST -stop-httpd" on every path; the exit status is prove's.
#
# Environment: CI=true turns a missing external client into a failure (not a
# skip); SCEP_TEST_VERBOSE=1 shows every external command; SCEP_TEST_KEEP=1
# keeps the temporary directories; PROVE_FLAGS adds prove options (-v);
# SCEP_BUILD is the build directory, relative to the top of the tree
# (default build; "make test" sets it: build/asan for the sanitized pass);
# SCEP_TESTS, a list of t/*.t files or patterns, runs only those (besides
# the unit tests); SANITIZE=1 (t/setup/sanitize.sh) runs the sanitized
# build's httpd with libasan preloaded.

set -u

apxs=${1:-}
if [ -z "$apxs" ]; then
    apxs=$(command -v apxs 2>/dev/null || echo /usr/bin/apxs)
fi

cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
SCEP_BUILD=${SCEP_BUILD:-build}
export SCEP_BUILD
bdir=$SCEP_BUILD
case $bdir in
    /*) babs=$bdir ;;
    *)  babs=$top/$bdir ;;
esac

die() {
    echo "run-tests: $*" >&2
    exit 1
}

[ -x "$apxs" ] || die "apxs not found ($apxs): apt-get install apache2-dev"
[ -f "$bdir/mod_scep.so" ] || die "$bdir/mod_scep.so is missing: run make build"
[ -f tools/mkpki.sh ] || die "tools/mkpki.sh is missing"
command -v prove >/dev/null 2>&1 || die "prove not found (perl)"
perl -MApache::TestRun -e 1 2>/dev/null ||
    die "Apache::Test not found: apt-get install libapache2-mod-perl2"

# ---- 1. the test PKI ------------------------------------------------------
rm -rf t/pki
sh tools/mkpki.sh t/pki >t/mkpki.log 2>&1 || {
    cat t/mkpki.log >&2
    die "tools/mkpki.sh t/pki failed"
}
rm -f t/mkpki.log
for f in ca.pem ca.key ra-enc.pem ra-enc.key ra-sign.pem ra-sign.key \
         ra-both.pem ra-both.key challenge; do
    [ -s "t/pki/$f" ] || die "tools/mkpki.sh did not make t/pki/$f"
done

# The next CA certificate (CA rollover, GetNextCACert on /scep-next): a new
# self-signed root.
(
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout t/pki/next-ca.key -out t/pki/next-ca.pem \
        -subj "/CN=mod_scep Test Next Root CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >/dev/null 2>&1
) || die "cannot make t/pki/next-ca.pem"
chmod 644 t/pki/next-ca.pem

# The SQL store (a fresh SQLite database), the key of the stored password
# hashes, and the admin page's users (admin/secret, alice/secret).
rm -rf t/db
mkdir -p t/db
sqlite3 t/db/scep.db < conf/schema-sqlite3.sql >/dev/null ||
    die "cannot create t/db/scep.db (sqlite3 missing? make deps)"
(umask 077; openssl rand -hex 32 > t/pki/otp.key)
{
    printf 'admin:%s\n' "$(openssl passwd -apr1 secret)"
    printf 'alice:%s\n' "$(openssl passwd -apr1 secret)"
} > t/pki/htpasswd
chmod 644 t/pki/htpasswd
# modules the system configuration may not load
libexec=$("$apxs" -q LIBEXECDIR)
{
    echo "# written by t/run-tests.sh"
    echo "# the module under test, from the build directory (SCEP_BUILD)"
    echo "LoadModule scep_module $babs/mod_scep.so"
    echo "<IfModule !dbd_module>"
    echo "    LoadModule dbd_module $libexec/mod_dbd.so"
    echo "</IfModule>"
    for m in auth_basic authn_core authn_file authz_user; do
        echo "<IfModule !${m}_module>"
        echo "    LoadModule ${m}_module $libexec/mod_${m}.so"
        echo "</IfModule>"
    done
} > t/conf/modules-extra.conf
# the children (nobody when started as root) write the database and its WAL
if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup t/db 2>/dev/null || chown -R nobody t/db
fi

# Services and fixtures some tests need (a mock CMP server, an HSM token...):
# every t/setup/*.sh is sourced here, before httpd starts; a background
# process it starts writes its pid to t/logs/setup-NAME.pid and is stopped
# with httpd.
mkdir -p t/logs
rm -f t/logs/setup-*.pid
for f in t/setup/*.sh; do
    [ -f "$f" ] || continue
    . "./$f" || die "setup $f failed"
done

# ---- 2. Apache::Test: t/TEST, configuration, httpd -------------------------
stop_httpd() {
    if [ -x t/TEST ]; then
        t/TEST -stop-httpd >>t/logs/stop.log 2>&1 || true
    fi
    for pf in t/logs/setup-*.pid; do
        [ -f "$pf" ] || continue
        kill "$(cat "$pf")" 2>/dev/null || true
        rm -f "$pf"
    done
}

mkdir -p t/logs
rm -f t/TEST
perl -MApache::TestMM -e \
    'Apache::TestMM::filter_args(); Apache::TestMM::generate_script("t/TEST")' \
    -- -apxs "$apxs" >t/logs/configure.log 2>&1 || {
    cat t/logs/configure.log >&2
    die "cannot generate t/TEST from t/TEST.PL"
}

# An httpd left over from an interrupted run would answer with the old
# configuration and keys.
t/TEST -stop-httpd >/dev/null 2>&1 || true
t/TEST -clean >>t/logs/configure.log 2>&1 || true
mkdir -p t/logs
rm -f t/logs/error_log t/logs/access_log t/logs/start.log t/logs/stop.log

# 8529 unless that port is taken (another run, another service)
APACHE_TEST_PORT=${APACHE_TEST_PORT:-select}
export APACHE_TEST_PORT

trap stop_httpd EXIT
trap 'exit 130' HUP INT TERM

if ! t/TEST -start-httpd >t/logs/start.log 2>&1; then
    cat t/logs/start.log >&2
    echo "run-tests: httpd did not start; t/logs/error_log:" >&2
    cat t/logs/error_log >&2 2>/dev/null
    exit 1
fi

port=$(perl -MApache::Test -e 'print Apache::Test::vars("port")' 2>/dev/null)
[ -n "$port" ] || die "cannot read the server port from t/conf/apache_test_config.pm"
export SCEP_TEST_PORT="$port"

if ! grep -q 'resuming normal operations' t/logs/error_log 2>/dev/null; then
    cat t/logs/start.log >&2
    echo "run-tests: httpd is not running; t/logs/error_log:" >&2
    cat t/logs/error_log >&2 2>/dev/null
    exit 1
fi

# ---- 3. one prove -----------------------------------------------------------
set --
for f in "$bdir"/t/test_*; do
    [ -f "$f" ] && [ -x "$f" ] && set -- "$@" "$f"
done
# shellcheck disable=SC2086
for f in ${SCEP_TESTS:-t/*.t}; do
    [ -f "$f" ] || die "SCEP_TESTS: no test file $f"
    set -- "$@" "$f"
done

echo "run-tests: $bdir/mod_scep.so, httpd on 127.0.0.1:$port; prove over $# test files"
# shellcheck disable=SC2086
prove -I t/lib ${PROVE_FLAGS:-} "$@"
rc=$?

# ---- 4. stop (quietly: prove's summary stays the last thing printed) --------
trap - EXIT
stop_httpd
exit $rc
