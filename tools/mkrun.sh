#!/bin/sh
# mkrun.sh SRCDIR PORT HTTPD CHALLENGE -- set up the "make run" demo.
#
#   SRCDIR     the source tree (the module is SRCDIR/build/mod_scep.so, or
#              SRCDIR/$SCEP_BUILD/mod_scep.so: "make run B=...")
#   PORT       TCP port on 127.0.0.1
#   HTTPD      the httpd binary that will run the config (apache2 on Debian)
#   CHALLENGE  otp (one-time passwords from the admin page, the default) or
#              static (one shared password in run/pki/challenge)
#
# Creates the demo PKI under SRCDIR/run/pki (once, tools/mkpki.sh), writes
# SRCDIR/run/httpd.conf (every time) and SRCDIR/run/logs, then prints the URL,
# the challenge password and enrollment commands for real clients.  The
# caller (make run) then starts
#   HTTPD -d SRCDIR/run -f SRCDIR/run/httpd.conf -DFOREGROUND
# The config is self-contained: it loads every module it uses and includes
# nothing from /etc/apache2.  APXS in the environment names the apxs to ask
# for the module directory (default: apxs on PATH).

set -eu

if [ $# -ne 4 ]; then
    echo "usage: $0 SRCDIR PORT HTTPD CHALLENGE" >&2
    exit 2
fi
src=$1
port=$2
httpd=$3
challenge=$4

case $port in
    ''|*[!0-9]*) echo "mkrun: PORT must be a number, not '$port'" >&2; exit 2 ;;
esac

src=$(cd "$src" && pwd)
run=$src/run
pki=$run/pki

case $challenge in
    static|otp) ;;
    *) echo "mkrun: CHALLENGE must be otp or static, not '$challenge'" >&2; exit 2 ;;
esac

# Where httpd's shared modules live.
apxs=${APXS:-}
[ -n "$apxs" ] || apxs=$(command -v apxs 2>/dev/null || true)
[ -n "$apxs" ] || apxs=/usr/bin/apxs
moddir=
if [ -x "$apxs" ]; then
    moddir=$("$apxs" -q LIBEXECDIR 2>/dev/null || true)
fi
if [ -z "$moddir" ] || [ ! -d "$moddir" ]; then
    moddir=/usr/lib/apache2/modules
    echo "mkrun: apxs not usable; assuming modules in $moddir" >&2
fi

# A server from an earlier "make run" still running would keep the port and
# the pid file, and would read the rewritten config at its next restart.
pidfile=$run/logs/httpd.pid
if [ -s "$pidfile" ]; then
    pid=$(head -n 1 "$pidfile")
    case $pid in
        ''|*[!0-9]*) ;;
        *)
            if kill -0 "$pid" 2>/dev/null &&
               { [ ! -r "/proc/$pid/cmdline" ] ||
                 tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$run/httpd.conf"; }
            then
                echo "mkrun: httpd (pid $pid) of an earlier make run is still" \
                     "running with $run/httpd.conf; stop it first (kill $pid)" >&2
                exit 1
            fi
            ;;
    esac
fi

sh "$src/tools/mkpki.sh" "$pki"

mkdir -p "$run/logs" "$run/htdocs" "$run/db"
chmod 755 "$run" "$run/logs" "$run/htdocs"

so=$src/${SCEP_BUILD:-build}/mod_scep.so
[ -f "$so" ] || echo "mkrun: warning: $so is not built yet (make build)" >&2

# httpd refuses to serve requests as root: started as root it switches its
# children to an unprivileged user.  The module reads keys and the challenge
# file while the config is parsed, still as root.
user_lines=
if [ "$(id -u)" = 0 ]; then
    u=
    for cand in www-data daemon nobody; do
        if id "$cand" >/dev/null 2>&1; then u=$cand; break; fi
    done
    if [ -z "$u" ]; then
        echo "mkrun: running as root but no www-data/daemon/nobody user" >&2
        exit 1
    fi
    g=$(id -gn "$u")
    user_lines="User $u
Group $g"
fi

# One-time passwords: the SQLite store (WAL, schema from conf/), the key of
# the stored password hashes, and the admin page's user "admin" with a
# random password made once.
if [ "$challenge" = otp ]; then
    command -v sqlite3 >/dev/null 2>&1 || {
        echo "mkrun: sqlite3 is missing (make deps)" >&2; exit 1; }
    want=$(sed -n 's/^PRAGMA user_version = \([0-9]*\);/\1/p' \
        "$src/conf/schema-sqlite3.sql")
    if [ -s "$run/db/scep.db" ]; then
        have=$(sqlite3 "$run/db/scep.db" 'PRAGMA user_version;' 2>/dev/null || echo 0)
        if [ "$have" != "$want" ]; then
            old="$run/db/scep.db.v$have.$(date +%Y%m%d%H%M%S)"
            echo "mkrun: the demo database has schema version $have, not $want;" \
                 "keeping it as $old and starting a new one"
            mv "$run/db/scep.db" "$old"
            rm -f "$run/db/scep.db-wal" "$run/db/scep.db-shm"
        fi
    fi
    sqlite3 "$run/db/scep.db" < "$src/conf/schema-sqlite3.sql" >/dev/null
    if [ ! -s "$pki/otp.key" ]; then
        (umask 077; openssl rand -hex 32 > "$pki/otp.key")
    fi
    if [ ! -s "$run/admin-password" ]; then
        (umask 077; openssl rand -hex 12 > "$run/admin-password")
    fi
    admin_pw=$(head -n 1 "$run/admin-password")
    printf 'admin:%s\n' "$(openssl passwd -apr1 "$admin_pw")" > "$run/htpasswd"
    chmod 644 "$run/htpasswd"
    if [ -n "$user_lines" ]; then
        # the children (not root) write the database, its WAL and journal
        chown -R "$u:$g" "$run/db"
    fi
fi

# TypesConfig defaults to conf/mime.types under ServerRoot, which run/ lacks.
types=/etc/mime.types
[ -r "$types" ] || types=/dev/null

# LoadModule for a module only if httpd was not built with it and the file
# exists (Debian builds log_config and unixd in).
loadmod() {
    if [ -f "$moddir/mod_$1.so" ]; then
        printf '<IfModule !%s_module>\n    LoadModule %s_module %s/mod_%s.so\n</IfModule>\n' \
            "$1" "$1" "$moddir" "$1"
    fi
}

# The MPM: event where it is a loadable module, else prefork; nothing when
# one is compiled in.
mpm=event
[ -f "$moddir/mod_mpm_event.so" ] || mpm=prefork

conf=$run/httpd.conf
{
    cat <<EOF
# Generated by tools/mkrun.sh for "make run" -- rewritten on every run, edit
# tools/mkrun.sh instead.  Self-contained: nothing from /etc/apache2.
ServerRoot "$run"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile "$run/logs/httpd.pid"
DefaultRuntimeDir "$run/logs"
ErrorLog "$run/logs/error_log"
DocumentRoot "$run/htdocs"

<IfModule !mpm_event_module>
<IfModule !mpm_prefork_module>
<IfModule !mpm_worker_module>
    LoadModule mpm_${mpm}_module $moddir/mod_mpm_${mpm}.so
</IfModule>
</IfModule>
</IfModule>
EOF
    loadmod unixd
    loadmod authz_core
    loadmod mime
    loadmod log_config
    if [ "$challenge" = otp ]; then
        loadmod dbd
        loadmod auth_basic
        loadmod authn_core
        loadmod authn_file
        loadmod authz_user
    fi
    cat <<EOF
LoadModule scep_module "$so"

${user_lines}
LogLevel warn scep:info
LogFormat "%h %l %u %t \"%r\" %>s %b \"%{User-Agent}i\" %D" scep_demo
CustomLog "$run/logs/access_log" scep_demo
TypesConfig "$types"

# Nothing but the SCEP endpoint is served.
<Directory />
    AllowOverride None
    Require all denied
</Directory>

# A PKIOperation GET carries the whole request in the query string (3-8 KB,
# more with 4096-bit keys); httpd's default limit is 8190 bytes.
LimitRequestLine 65534
LimitRequestFieldSize 65534

# The demo PKI made by tools/mkpki.sh (paths relative to ServerRoot).
SCEPCACertificateFile pki/ca.pem
SCEPRAEncryption pki/ra-enc.pem pki/ra-enc.key
SCEPRASigning pki/ra-sign.pem pki/ra-sign.key
SCEPCAProvider local pki/ca.key
SCEPCertificateValidity 365
EOF
    if [ "$challenge" = otp ]; then
        cat <<EOF
# NDES one-time passwords, kept in SQLite through mod_dbd (WAL mode is set
# in the database file; busy_timeout lets children wait for each other).
DBDriver sqlite3
DBDParams "$run/db/scep.db"
DBDInitSQL "PRAGMA busy_timeout = 5000"
SCEPChallenge otp
SCEPPasswordKeyFile pki/otp.key
SCEPPasswordLength 8
SCEPPasswordValidity 60
SCEPPasswordMax 5

# The admin page, as NDES's /certsrv/mscep_admin/ (user admin, password in
# run/admin-password).
<Location /certsrv/mscep_admin>
    SetHandler scep-admin
    AuthType Basic
    AuthName "mod_scep demo admin"
    AuthBasicProvider file
    AuthUserFile "$run/htpasswd"
    Require valid-user
</Location>
EOF
    else
        cat <<EOF
SCEPChallenge static file:pki/challenge
EOF
    fi
    cat <<EOF
# micromdm's scepclient always sends single DES (OpenSSL's legacy provider).
SCEPLegacyProvider On
SCEPCiphers AES-128 AES-192 AES-256 DES3 DES

# Covers /certsrv/mscep, /certsrv/mscep/, /certsrv/mscep/mscep.dll and
# /certsrv/mscep/mscep.dll/pkiclient.exe (not /certsrv/mscep_admin).
<Location /certsrv/mscep>
    SetHandler scep
    Require all granted
</Location>

# Health for a load balancer (JSON, 503 when this node cannot serve) and
# Prometheus metrics.
<Location /scep-status>
    SetHandler scep-status
    Require all granted
</Location>
<Location /scep-metrics>
    SetHandler scep-metrics
    Require all granted
</Location>
EOF
    if [ "$challenge" = otp ]; then
        cat <<EOF

# The CA's CRL, also named in every certificate issued (the store keeps
# revocations; revoke from the admin page's ?certs list).
SCEPCRLURL http://127.0.0.1:$port/crl/ca.crl
<Location /crl/ca.crl>
    SetHandler scep-crl
    Require all granted
</Location>
EOF
    fi
} > "$conf.tmp"
mv -f "$conf.tmp" "$conf"

# Refuse to go on with a config httpd would not start with: say why now,
# before the banner.
if ! out=$("$httpd" -t -d "$run" -f "$conf" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "mkrun: $httpd -t -d $run -f $conf failed" >&2
    exit 1
fi

# Children running as another user must be able to walk to DocumentRoot,
# else httpd answers 403 for every URL.
if [ -n "$user_lines" ] && command -v runuser >/dev/null 2>&1; then
    if ! runuser -u "$u" -- test -x "$run/htdocs" 2>/dev/null; then
        echo "mkrun: warning: user $u cannot reach $run/htdocs;" \
             "requests will get 403 (make a parent directory searchable)" >&2
    fi
fi

url=http://127.0.0.1:$port/certsrv/mscep/mscep.dll
admin=http://127.0.0.1:$port/certsrv/mscep_admin/
if [ "$challenge" = otp ]; then
    pwline="one-time passwords  from $admin
                      (user admin, password $admin_pw, also in run/admin-password)"
    pw='"$PW"'
else
    pw=$(head -n 1 "$pki/challenge")
    pwline="challenge password  $pw (static, in run/pki/challenge)"
    pw="'$pw'"
fi

cat <<EOF

mod_scep demo
  SCEP URL            $url
  $pwline
  CA certificate      $pki/ca.pem
  config and logs     $conf, $run/logs/
EOF
if [ "$challenge" = otp ]; then
    cat <<EOF

Fetch a one-time password (JSON; a browser gets NDES's page):
  PW=\$(curl -s -u 'admin:$admin_pw' -H 'Accept: application/json' \\
       '$admin' | sed 's/.*"password": "\\([0-9A-F]*\\)".*/\\1/')
  echo \$PW
Each password works for one enrollment and expires after 60 minutes: fetch
a new one before each enrollment below.
EOF
fi
cat <<EOF

Capabilities, health and metrics:
  curl '$url?operation=GetCACaps'
  curl http://127.0.0.1:$port/scep-status
  curl http://127.0.0.1:$port/scep-metrics

Enroll with micromdm scepclient (Debian package scep; it sends SHA-1 + DES):
  W=\$(mktemp -d)
  scepclient -server-url '$url' -challenge $pw \\
      -private-key "\$W/key.pem" -certificate "\$W/cert.pem" -cn test
  openssl verify -CAfile '$pki/ca.pem' "\$W/cert.pem"

Enroll with strongSwan pki (strongswan-pki + libstrongswan-extra-plugins):
  W=\$(mktemp -d)
  pki --gen --type rsa --size 2048 --outform pem > "\$W/key.pem"
  pki --scep --url '$url' --in "\$W/key.pem" --dn 'CN=test' \\
      --password $pw --cacert-enc '$pki/ra-enc.pem' \\
      --cacert-sig '$pki/ra-sign.pem' --cacert '$pki/ca.pem' \\
      --outform pem > "\$W/cert.pem"
  openssl verify -CAfile '$pki/ca.pem' "\$W/cert.pem"
  (pki --scepca --url '$url' --caout "\$W/ca.pem" --raout "\$W/ra.pem" --outform pem
   fetches the same certificates over SCEP.)

Ctrl-C stops the server.

EOF
