#!/bin/sh
# mkpki.sh DIR -- a demo PKI shaped like Microsoft NDES's, for mod_scep.
#
# Creates once (nothing is touched when DIR/ca.pem already exists):
#   DIR/ca.pem       DIR/ca.key       root "CN=mod_scep Demo Root CA", 10 years
#   DIR/ra-enc.pem   DIR/ra-enc.key   RA "CN=mod_scep RA Encryption"
#                                     (NDES "CEP Encryption": keyEncipherment)
#   DIR/ra-sign.pem  DIR/ra-sign.key  RA "CN=mod_scep RA Signing" (NDES
#                                     "Exchange Enrollment Agent (Offline
#                                     request)": digitalSignature, EKU
#                                     Certificate Request Agent)
#   DIR/ra-both.pem  DIR/ra-both.key  one RA certificate with both usages
# and, if it does not exist yet,
#   DIR/challenge                     a random static challenge password
#                                     (16 uppercase hex characters)
#
# RSA 2048, SHA-256, random serials, RA certificates valid 2 years.
# Key files are mode 0600 and owned by whoever runs this: mod_scep reads its
# keys while httpd parses its configuration, before it drops privileges.
# Needs only the openssl command line tool (1.1.1 or 3.x).

set -eu

usage() {
    echo "usage: $0 DIR" >&2
    exit 2
}

[ $# -eq 1 ] || usage
dir=$1
[ -n "$dir" ] || usage

command -v openssl >/dev/null 2>&1 || {
    echo "mkpki: openssl not found (apt-get install openssl)" >&2
    exit 1
}

# DIR itself stays searchable (0755): httpd's children may walk paths under
# it; only the key files and the challenge are private.
umask 022
mkdir -p "$dir"
umask 077

# The challenge password is independent of the certificates: keep an existing
# one, create it when missing.
if [ ! -s "$dir/challenge" ]; then
    pw=$(openssl rand -hex 8 | tr a-f A-F)
    printf '%s\n' "$pw" > "$dir/challenge.tmp"
    mv -f "$dir/challenge.tmp" "$dir/challenge"
    echo "mkpki: wrote $dir/challenge"
fi

if [ -e "$dir/ca.pem" ]; then
    echo "mkpki: $dir/ca.pem exists, keeping the PKI in $dir"
    exit 0
fi

# Build everything in a scratch directory inside DIR and move the results in
# at the end, ca.pem last: an interrupted run leaves no half-made PKI that a
# later run would mistake for a finished one.
tmp=$dir/.mkpki.$$
rm -rf "$tmp"
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# One configuration file serves "req" (the distinguished_name section it
# insists on) and holds the extension sections for "req -x509" and
# "x509 -req -extfile ... -extensions NAME".
cat > "$tmp/ext.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
string_mask        = utf8only
utf8               = yes

[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

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

[ ra_both ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyEncipherment
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF

# A random positive serial of 128 bits (RFC 5280: at most 20 octets).
serial() {
    echo "0x$(openssl rand -hex 16)"
}

newkey() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$tmp/$1.key" 2>/dev/null
    chmod 600 "$tmp/$1.key"
}

# RA certificate: newra NAME SECTION "CN"
newra() {
    newkey "$1"
    openssl req -new -key "$tmp/$1.key" -subj "/CN=$3" \
        -config "$tmp/ext.cnf" -out "$tmp/$1.csr"
    openssl x509 -req -in "$tmp/$1.csr" -sha256 -days 730 \
        -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial "$(serial)" \
        -extfile "$tmp/ext.cnf" -extensions "$2" \
        -out "$tmp/$1.pem" 2>/dev/null
    chmod 644 "$tmp/$1.pem"
}

echo "mkpki: creating a demo PKI in $dir (RSA 2048, SHA-256)"
newkey ca
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 \
    -subj "/CN=mod_scep Demo Root CA" -set_serial "$(serial)" \
    -config "$tmp/ext.cnf" -extensions v3_ca -out "$tmp/ca.pem"
chmod 644 "$tmp/ca.pem"

newra ra-enc  ra_enc  "mod_scep RA Encryption"
newra ra-sign ra_sign "mod_scep RA Signing"
newra ra-both ra_both "mod_scep RA"

for f in ra-enc ra-sign ra-both; do
    openssl verify -CAfile "$tmp/ca.pem" "$tmp/$f.pem" >/dev/null
done

for f in ra-enc ra-sign ra-both ca; do
    mv -f "$tmp/$f.key" "$dir/$f.key"
    [ "$f" = ca ] || mv -f "$tmp/$f.pem" "$dir/$f.pem"
done
mv -f "$tmp/ca.pem" "$dir/ca.pem"

echo "mkpki: wrote $dir/ca.pem, ra-enc.pem, ra-sign.pem, ra-both.pem (+ .key)"
