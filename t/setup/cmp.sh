# t/setup/cmp.sh -- sourced by t/run-tests.sh (POSIX sh, set -u, from the
# top of the tree, before httpd starts) for t/60-cmp.t: an upstream CA that
# speaks CMP, played by OpenSSL's mock server ("openssl cmp -port").
#
#  t/pki/cmp/              the upstream PKI: its CA, the mock server's CMP
#                          certificate, the RA's CMP certificate (signature
#                          protection), an SCEP RA pair issued by the
#                          upstream CA, the shared secret (PBM), the key the
#                          test enrolls with and the certificate the mock
#                          returns for it (the mock always returns one fixed
#                          certificate), and one for another key
#  t/logs/setup-cmp-*.pid  the mock servers and a perl listener; stopped
#                          with httpd by t/run-tests.sh
#  t/logs/cmp-*.log        what they said
#  t/conf/cmp-ports.conf   Define lines with the ports (free loopback ports
#                          found now), included by t/conf/provider-cmp.conf
#  t/pki/cmp/ports         the same as NAME=PORT lines for t/60-cmp.t
#
# The mock servers (OpenSSL 3.0 binds all interfaces, it has no option for
# an address):
#   main     PBM (secret) and signature protection, grants implicit confirm
#   poll     "waiting" once: the certificate comes on the first pollReq
#   poll2    "waiting" twice: PENDING after one pollReq as well
#   reject   PKIStatus rejection, failInfo badRequest, a status string
#   wrongkey returns a certificate for another key than the CSR's
# and the perl listener (t/bin/cmp-listener.pl): "silent" accepts and never
# answers, "garbage" answers HTTP 200 with bytes that are no CMP message.
# "down" is a port nobody listens on.  Variables are prefixed cmpsetup_.

cmpsetup_fail() {
    die "t/setup/cmp.sh: $*"
}

cmpsetup_d=t/pki/cmp
rm -rf "$cmpsetup_d"
mkdir -p "$cmpsetup_d" t/logs || cmpsetup_fail "cannot make $cmpsetup_d"
rm -f t/conf/cmp-ports.conf t/logs/cmp-*.log

command -v openssl >/dev/null 2>&1 || cmpsetup_fail "openssl not found"
openssl cmp -help >/dev/null 2>&1 ||
    cmpsetup_fail "this openssl has no cmp command (OpenSSL 3.0 or later)"

# ---- the upstream PKI --------------------------------------------------------
cat > "$cmpsetup_d/ext.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = unused
[ cmp_signer ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ scep_ra ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = 1.3.6.1.4.1.311.20.2.1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ ee ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
(
    umask 077
    cd "$cmpsetup_d" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout upca.key -out upca.pem \
        -subj "/CN=mod_scep Test Upstream CMP CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >/dev/null 2>&1 || exit 1
    # name:subject:extensions
    for cmpsetup_c in "srv:mod_scep Test CMP Server:cmp_signer" \
                      "ra-cmp:mod_scep Test CMP RA Client:cmp_signer" \
                      "ra-scep:mod_scep Test CMP Endpoint RA:scep_ra" \
                      "ee:cmp-enrollee:ee" \
                      "other:cmp-someone-else:ee"; do
        cmpsetup_n=${cmpsetup_c%%:*}
        cmpsetup_rest=${cmpsetup_c#*:}
        openssl req -new -newkey rsa:2048 -nodes -keyout "$cmpsetup_n.key" \
            -subj "/CN=${cmpsetup_rest%:*}" -config ext.cnf \
            -out "$cmpsetup_n.csr" >/dev/null 2>&1 || exit 1
        openssl x509 -req -in "$cmpsetup_n.csr" -sha256 -days 730 \
            -CA upca.pem -CAkey upca.key -set_serial "0x$(openssl rand -hex 12)" \
            -extfile ext.cnf -extensions "${cmpsetup_rest##*:}" \
            -out "$cmpsetup_n.pem" >/dev/null 2>&1 || exit 1
        rm -f "$cmpsetup_n.csr"
    done
    openssl rand -hex 12 > secret
) || cmpsetup_fail "cannot make the upstream PKI in $cmpsetup_d"
rm -f "$cmpsetup_d/ext.cnf"
chmod 644 "$cmpsetup_d"/*.pem
# the test client enrolls with this key (the mock's certificate is for it)
chmod 644 "$cmpsetup_d/ee.key"

# ---- free loopback ports -------------------------------------------------------
# Ports the kernel hands out now, held until all are known so that no two
# are the same; a small race with other programs remains.
cmpsetup_ports=$(perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                                        LocalPort => 0, Listen => 1,
                                        ReuseAddr => 1)
                  or die "no port: $!\n" } 1 .. 8;
    print join(" ", map { $_->sockport } @s), "\n";') ||
    cmpsetup_fail "cannot find free ports"
read -r cmpsetup_p_main cmpsetup_p_poll cmpsetup_p_poll2 cmpsetup_p_reject \
    cmpsetup_p_wrongkey cmpsetup_p_silent cmpsetup_p_garbage cmpsetup_p_down \
    <<EOF
$cmpsetup_ports
EOF
[ -n "$cmpsetup_p_down" ] || cmpsetup_fail "cannot find free ports"

# ---- the mock servers ----------------------------------------------------------
cmpsetup_secret=$(cat "$cmpsetup_d/secret")

# cmpsetup_mock NAME PORT [options]: one "openssl cmp -port" in the
# background, its pid in t/logs/setup-cmp-NAME.pid
cmpsetup_mock() {
    cmpsetup_name=$1
    cmpsetup_port=$2
    shift 2
    openssl cmp -port "$cmpsetup_port" \
        -srv_ref mock-ca -srv_secret "pass:$cmpsetup_secret" \
        -srv_cert "$cmpsetup_d/srv.pem" -srv_key "$cmpsetup_d/srv.key" \
        -srv_trusted "$cmpsetup_d/upca.pem" \
        -rsp_capubs "$cmpsetup_d/upca.pem" "$@" \
        >"t/logs/cmp-$cmpsetup_name.log" 2>&1 </dev/null &
    echo $! > "t/logs/setup-cmp-$cmpsetup_name.pid"
}

cmpsetup_mock main "$cmpsetup_p_main" -rsp_cert "$cmpsetup_d/ee.pem" \
    -grant_implicitconf
cmpsetup_mock poll "$cmpsetup_p_poll" -rsp_cert "$cmpsetup_d/ee.pem" \
    -poll_count 1 -check_after 1
cmpsetup_mock poll2 "$cmpsetup_p_poll2" -rsp_cert "$cmpsetup_d/ee.pem" \
    -poll_count 2 -check_after 1
cmpsetup_mock reject "$cmpsetup_p_reject" -rsp_cert "$cmpsetup_d/ee.pem" \
    -pkistatus 2 -failure 2 -statusstring "refused by the test CA policy"
cmpsetup_mock wrongkey "$cmpsetup_p_wrongkey" \
    -rsp_cert "$cmpsetup_d/other.pem"

perl t/bin/cmp-listener.pl "$cmpsetup_p_silent" "$cmpsetup_p_garbage" \
    >t/logs/cmp-listener.log 2>&1 </dev/null &
echo $! > t/logs/setup-cmp-listener.pid

# Each mock says "ACCEPT [::]:PORT" once it listens; the listener "ready".
cmpsetup_i=0
while :; do
    cmpsetup_missing=
    for cmpsetup_name in main poll poll2 reject wrongkey; do
        grep -q "ACCEPT" "t/logs/cmp-$cmpsetup_name.log" 2>/dev/null ||
            cmpsetup_missing="$cmpsetup_missing $cmpsetup_name"
    done
    grep -q "ready" t/logs/cmp-listener.log 2>/dev/null ||
        cmpsetup_missing="$cmpsetup_missing listener"
    [ -z "$cmpsetup_missing" ] && break
    cmpsetup_i=$((cmpsetup_i + 1))
    if [ "$cmpsetup_i" -gt 100 ]; then
        for cmpsetup_name in $cmpsetup_missing; do
            cat "t/logs/cmp-$cmpsetup_name.log" >&2 2>/dev/null
        done
        cmpsetup_fail "the mock CMP servers do not listen:$cmpsetup_missing"
    fi
    sleep 0.1
done

# ---- what httpd and the test read ----------------------------------------------
{
    echo "# written by t/setup/cmp.sh: the ports of this run"
    echo "Define SCEP_CMP_MAIN_PORT $cmpsetup_p_main"
    echo "Define SCEP_CMP_POLL_PORT $cmpsetup_p_poll"
    echo "Define SCEP_CMP_POLL2_PORT $cmpsetup_p_poll2"
    echo "Define SCEP_CMP_REJECT_PORT $cmpsetup_p_reject"
    echo "Define SCEP_CMP_WRONGKEY_PORT $cmpsetup_p_wrongkey"
    echo "Define SCEP_CMP_SILENT_PORT $cmpsetup_p_silent"
    echo "Define SCEP_CMP_GARBAGE_PORT $cmpsetup_p_garbage"
    echo "Define SCEP_CMP_DOWN_PORT $cmpsetup_p_down"
    echo "Define SCEP_CMP_SECRET $cmpsetup_secret"
    echo "Define SCEP_CMP"
} > t/conf/cmp-ports.conf
{
    echo "main=$cmpsetup_p_main"
    echo "poll=$cmpsetup_p_poll"
    echo "poll2=$cmpsetup_p_poll2"
    echo "reject=$cmpsetup_p_reject"
    echo "wrongkey=$cmpsetup_p_wrongkey"
    echo "silent=$cmpsetup_p_silent"
    echo "garbage=$cmpsetup_p_garbage"
    echo "down=$cmpsetup_p_down"
} > "$cmpsetup_d/ports"
