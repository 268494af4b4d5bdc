# t/setup/providers.sh -- sourced by t/run-tests.sh (POSIX sh, set -u, from
# the top of the tree, before httpd starts) for t/50-command.t,
# t/51-example-provider.t and t/52-multi-endpoint.t:
#
#  t/pki2/            a second CA ("mod_scep Test Second CA") with its own RA
#                     pair and static challenge password
#  t/providers/ca1/   what the command provider's program
#  t/providers/ca2/   (t/bin/scep-ca-command.sh) signs with: the CA
#                     certificate and a copy of the key of t/pki (ca1) and
#                     t/pki2 (ca2), readable by httpd's User, and the
#                     writable pending/ and env/
#  build/examples/    the example provider module (examples/), built with
#                     apxs against mod_scep.h as installed, and nothing else
#                     of the tree; t/logs/example-build.log says how it went
#
# Everything is made afresh on every run.  Variables are prefixed prov_.

prov_fail() {
    die "t/setup/providers.sh: $*"
}

# ---- the second PKI ---------------------------------------------------------
prov_pki2=t/pki2
rm -rf "$prov_pki2"
mkdir -p "$prov_pki2"
cat > "$prov_pki2/ext.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = unused
[ ra_enc ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, keyEncipherment, dataEncipherment
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ ra_sign ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = 1.3.6.1.4.1.311.20.2.1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
(
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$prov_pki2/ca.key" -out "$prov_pki2/ca.pem" \
        -subj "/CN=mod_scep Test Second CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >/dev/null 2>&1 || exit 1
    for prov_ra in enc:"Second RA Encryption" sign:"Second RA Signing"; do
        prov_n=${prov_ra%%:*}
        openssl req -new -newkey rsa:2048 -nodes \
            -keyout "$prov_pki2/ra-$prov_n.key" -subj "/CN=${prov_ra#*:}" \
            -config "$prov_pki2/ext.cnf" -out "$prov_pki2/ra-$prov_n.csr" \
            >/dev/null 2>&1 || exit 1
        openssl x509 -req -in "$prov_pki2/ra-$prov_n.csr" -sha256 -days 730 \
            -CA "$prov_pki2/ca.pem" -CAkey "$prov_pki2/ca.key" \
            -extfile "$prov_pki2/ext.cnf" -extensions "ra_$prov_n" \
            -out "$prov_pki2/ra-$prov_n.pem" >/dev/null 2>&1 || exit 1
        rm -f "$prov_pki2/ra-$prov_n.csr"
    done
    openssl rand -hex 8 | tr a-f A-F > "$prov_pki2/challenge"
) || prov_fail "cannot make the second PKI in $prov_pki2"
chmod 644 "$prov_pki2"/*.pem
rm -f "$prov_pki2/ext.cnf"
cmp -s "$prov_pki2/challenge" t/pki/challenge &&
    prov_fail "t/pki2/challenge is t/pki/challenge"

# ---- the command provider's CAs ---------------------------------------------
rm -rf t/providers
for prov_ca in ca1:t/pki ca2:t/pki2; do
    prov_d=t/providers/${prov_ca%%:*}
    mkdir -p "$prov_d/pending" "$prov_d/env" ||
        prov_fail "cannot make $prov_d"
    cp "${prov_ca#*:}/ca.pem" "$prov_d/ca.pem" &&
        (umask 077; cp "${prov_ca#*:}/ca.key" "$prov_d/ca.key") ||
        prov_fail "cannot copy the CA of ${prov_ca#*:} to $prov_d"
done
# httpd's children run the programs: as nobody when the suite runs as root
if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup t/providers 2>/dev/null ||
        chown -R nobody t/providers
fi

# ---- the example provider, built like a third party would --------------------
# The header as installed ("make install-headers DESTDIR=..." once the
# Makefile has it; a copy to the same place until then), then apxs with that
# include directory and nothing else of the tree.
prov_apxs=${apxs:-apxs}
prov_dest=$(pwd)/t/providers/destdir
prov_inc=$prov_dest$("$prov_apxs" -q INCLUDEDIR)
rm -rf build/examples
mkdir -p build/examples t/logs
{
    echo "# t/setup/providers.sh: building examples/mod_scep_example_ca.c"
    if make -s -n install-headers >/dev/null 2>&1; then
        echo "\$ make install-headers DESTDIR=$prov_dest"
        make -s install-headers DESTDIR="$prov_dest"
    else
        echo "(no 'make install-headers' yet: copying include/mod_scep.h)"
        mkdir -p "$prov_inc" && cp include/mod_scep.h "$prov_inc/"
    fi &&
    cp examples/mod_scep_example_ca.c build/examples/ &&
    echo "\$ cd build/examples && $prov_apxs -c -I$prov_inc ... mod_scep_example_ca.c -lcrypto" &&
    (cd build/examples &&
     "$prov_apxs" -c -I"$prov_inc" -Wc,-Wall -Wc,-Wextra -Wc,-Werror \
         -Wc,-Wshadow -Wc,-Wmissing-prototypes mod_scep_example_ca.c -lcrypto) &&
    echo "built build/examples/.libs/mod_scep_example_ca.so"
} > t/logs/example-build.log 2>&1 ||
    echo "t/setup/providers.sh: the example provider did not build, see" \
         "t/logs/example-build.log (t/51-example-provider.t will fail)" >&2
