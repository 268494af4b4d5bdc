# t/setup/hsm.sh -- sourced by t/run-tests.sh (POSIX sh, set -u, from the
# top of the tree, before httpd starts) for t/61-hsm.t and
# build/t/test_engine: a SoftHSM2 token whose keys were made inside it and
# never exist anywhere else.
#
#  t/pki/hsm/softhsm2.conf   SoftHSM2's configuration, its own token
#                            directory t/pki/hsm/tokens; exported as
#                            SOFTHSM2_CONF, so httpd (started later by this
#                            shell) and its children use this token
#  token "mod_scep test"     user PIN in t/pki/hsm/pin (random), keys made
#                            by the token (pkcs11-tool --keypairgen):
#                              scep-ca  (id 01) the CA key
#                              scep-ra  (id 02) an RA key (both RA roles)
#  t/pki/hsm/ca.pem          the CA certificate, self-signed through the
#                            PKCS#11 engine by scep-ca
#  t/pki/hsm/ra-token.pem    the RA certificate for scep-ra (CSR signed by
#                            scep-ra, certificate by scep-ca, both through
#                            the engine)
#  t/pki/hsm/ra.pem ra.key   an RA pair on disk, issued by scep-ca
#  t/conf/hsm-vars.conf      Define lines (module, PIN, label) included by
#                            t/conf/hsm.conf
#
# The children run as nobody when the suite runs as root: the token
# directory is theirs.  When softhsm2, opensc (pkcs11-tool) or the engine
# (libengine-pkcs11-openssl) is missing nothing is made and t/61-hsm.t says
# why.  Variables are prefixed hsmsetup_.

hsmsetup_d=t/pki/hsm
hsmsetup_label="mod_scep test"
rm -rf "$hsmsetup_d"
rm -f t/conf/hsm-vars.conf t/logs/hsm-setup.log
unset SOFTHSM2_CONF

hsmsetup_why=
hsmsetup_module=
for hsmsetup_m in /usr/lib/softhsm/libsofthsm2.so \
                  /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
                  /usr/lib/*/softhsm/libsofthsm2.so /usr/lib64/libsofthsm2.so \
                  /usr/local/lib/softhsm/libsofthsm2.so; do
    if [ -f "$hsmsetup_m" ]; then
        hsmsetup_module=$hsmsetup_m
        break
    fi
done
hsmsetup_engines=$(openssl version -e 2>/dev/null |
                   sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
if [ -z "$hsmsetup_module" ]; then
    hsmsetup_why="no libsofthsm2.so (apt-get install softhsm2)"
elif ! command -v softhsm2-util >/dev/null 2>&1; then
    hsmsetup_why="no softhsm2-util (apt-get install softhsm2)"
elif ! command -v pkcs11-tool >/dev/null 2>&1; then
    hsmsetup_why="no pkcs11-tool (apt-get install opensc)"
elif [ ! -f "${hsmsetup_engines:-/nonexistent}/pkcs11.so" ]; then
    hsmsetup_why="no OpenSSL pkcs11 engine in ${hsmsetup_engines:-?} (apt-get install libengine-pkcs11-openssl)"
fi

mkdir -p "$hsmsetup_d" t/logs
if [ -n "$hsmsetup_why" ]; then
    echo "$hsmsetup_why" > "$hsmsetup_d/unavailable"
else
    hsmsetup_top=$(pwd)
    hsmsetup_abs=$hsmsetup_top/$hsmsetup_d
    mkdir -p "$hsmsetup_d/tokens"
    cat > "$hsmsetup_d/softhsm2.conf" <<EOF
# written by t/setup/hsm.sh
directories.tokendir = $hsmsetup_abs/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
    SOFTHSM2_CONF=$hsmsetup_abs/softhsm2.conf
    export SOFTHSM2_CONF
    openssl rand -hex 4 > "$hsmsetup_d/pin"
    hsmsetup_pin=$(cat "$hsmsetup_d/pin")
    # the engine for the openssl commands below (httpd needs no such file:
    # mod_scep loads the engine itself, module and PIN from the key URI)
    cat > "$hsmsetup_d/openssl-engine.cnf" <<EOF
# written by t/setup/hsm.sh, for the openssl commands of the set-up only
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
MODULE_PATH = $hsmsetup_module
init = 0
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ra]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = 1.3.6.1.4.1.311.20.2.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    hsmsetup_uri() {
        echo "pkcs11:token=mod_scep%20test;object=$1;type=private;pin-value=$hsmsetup_pin"
    }
    (
        set -e
        cd "$hsmsetup_d"
        hsmsetup_p11() {
            pkcs11-tool --module "$hsmsetup_module" \
                --token-label "$hsmsetup_label" --login --pin "$hsmsetup_pin" "$@"
        }
        softhsm2-util --init-token --free --label "$hsmsetup_label" \
            --pin "$hsmsetup_pin" --so-pin "$(openssl rand -hex 8)"
        # the keys are made by the token: private, sensitive, not extractable
        hsmsetup_p11 --keypairgen --key-type rsa:2048 --label scep-ca --id 01
        hsmsetup_p11 --keypairgen --key-type rsa:2048 --label scep-ra --id 02
        # the CA certificate, signed through the engine by the token's key
        OPENSSL_CONF=$hsmsetup_abs/openssl-engine.cnf \
            openssl req -new -x509 -engine pkcs11 -keyform engine \
            -key "$(hsmsetup_uri scep-ca)" -sha256 -days 3650 \
            -subj "/CN=mod_scep Test HSM CA" -extensions ca \
            -config openssl-engine.cnf -out ca.pem
        # the RA certificate for the token's RA key
        OPENSSL_CONF=$hsmsetup_abs/openssl-engine.cnf \
            openssl req -new -engine pkcs11 -keyform engine \
            -key "$(hsmsetup_uri scep-ra)" -sha256 \
            -subj "/CN=mod_scep Test HSM RA (token)" \
            -config openssl-engine.cnf -out ra-token.csr
        OPENSSL_CONF=$hsmsetup_abs/openssl-engine.cnf \
            openssl x509 -req -engine pkcs11 -CAkeyform engine \
            -in ra-token.csr -CA ca.pem -CAkey "$(hsmsetup_uri scep-ca)" \
            -set_serial "0x$(openssl rand -hex 12)" -sha256 -days 730 \
            -extfile openssl-engine.cnf -extensions ra -out ra-token.pem
        # an RA pair on disk, issued by the token's CA key
        openssl req -new -newkey rsa:2048 -nodes -keyout ra.key \
            -subj "/CN=mod_scep Test HSM RA (file)" -config openssl-engine.cnf \
            -out ra.csr
        OPENSSL_CONF=$hsmsetup_abs/openssl-engine.cnf \
            openssl x509 -req -engine pkcs11 -CAkeyform engine \
            -in ra.csr -CA ca.pem -CAkey "$(hsmsetup_uri scep-ca)" \
            -set_serial "0x$(openssl rand -hex 12)" -sha256 -days 730 \
            -extfile openssl-engine.cnf -extensions ra -out ra.pem
        rm -f ra.csr ra-token.csr
        chmod 600 ra.key pin
        chmod 644 ca.pem ra.pem ra-token.pem
    ) >t/logs/hsm-setup.log 2>&1 || {
        cat t/logs/hsm-setup.log >&2
        die "t/setup/hsm.sh: cannot make the SoftHSM2 token (t/logs/hsm-setup.log)"
    }
    # httpd's children (nobody when the suite runs as root) open the token
    # after the fork: the token directory and SoftHSM2's files are theirs
    if [ "$(id -u)" = 0 ]; then
        chown -R nobody:nogroup "$hsmsetup_d/tokens" 2>/dev/null ||
            chown -R nobody "$hsmsetup_d/tokens"
        chmod 755 "$hsmsetup_d"
        chmod 644 "$hsmsetup_d/softhsm2.conf"
    fi
    {
        echo "# written by t/setup/hsm.sh"
        echo "Define SCEP_HSM_MODULE $hsmsetup_module"
        echo "Define SCEP_HSM_PIN $hsmsetup_pin"
        echo "Define SCEP_HSM"
    } > t/conf/hsm-vars.conf
    echo "$hsmsetup_module" > "$hsmsetup_d/module"
fi
