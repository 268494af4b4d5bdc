#!/bin/sh
# scep-ca-command.sh MODE CADIR -- a CA program for mod_scep's "command" CA
# provider, for the tests (t/50-command.t, t/52-multi-endpoint.t) and as an
# example of the contract (docs/providers.md):
#
#   SCEPCAProvider command /path/scep-ca-command.sh sign /path/cadir
#
# The CSR comes as PEM on stdin, the facts in SCEP_* variables; exit 0 with
# PEM certificates on stdout (issued first), 2 with a reason on stderr
# (rejected), 3 with a reference on the first line of stdout (pending; poll
# runs this again with SCEP_OPERATION=poll and SCEP_REFERENCE), anything
# else is a failure of the CA.
#
# CADIR holds ca.pem and ca.key (readable by httpd's User: t/setup/
# providers.sh copies them there), and writable pending/ and env/.
#
# MODE:
#   sign      sign the CSR with CADIR's CA: validity SCEP_VALIDITY_DAYS,
#             extendedKeyUsage SCEP_EXT_KEY_USAGE, subjectAltName from
#             SCEP_SANS when SCEP_COPY_SAN=1
#   pending   enroll: keep the CSR, print the reference, exit 3.  poll: the
#             first line of CADIR/pending/REF.state decides: "issue" signs,
#             "reject" refuses (exit 2), anything else exits 3 again
#   reject    refuse (exit 2)
#   down      the CA is unreachable (exit 1)
#   missing   exec a program that does not exist (exit 127)
#   slow      sleep 30 (longer than the endpoint's timeout=2)
#   garbage   text, no PEM at all
#   notcert   a PEM private key instead of a certificate
#   otherkey  a good certificate from the CA, for another key
#   crash     die of SIGSEGV
set -u

mode=${1:-}
cadir=${2:-}
if [ -z "$mode" ] || [ ! -d "$cadir" ]; then
    echo "usage: $0 MODE CADIR" >&2
    exit 64
fi

op=${SCEP_OPERATION:-enroll}
# the transactionID as a file name
tid=$(printf '%s' "${SCEP_TRANSACTION_ID:-none}" | tr -c 'A-Za-z0-9._-' '_')

work=$(mktemp -d "${TMPDIR:-/tmp}/scep-ca-command.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

# what this call got, for the tests to look at
env | grep '^SCEP_' | sort > "$cadir/env/$tid.$op" 2>/dev/null
printf '%s\n' "$@" > "$cadir/env/$tid.$op.args" 2>/dev/null

# sign CSRFILE [DAYS]: the certificate on stdout
sign() {
    csr=$1
    days=${2:-${SCEP_VALIDITY_DAYS:-30}}
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "extendedKeyUsage = ${SCEP_EXT_KEY_USAGE:-clientAuth}"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        if [ "${SCEP_COPY_SAN:-0}" = 1 ] && [ -n "${SCEP_SANS:-}" ]; then
            # dns:a,ip:b -> DNS:a,IP:b (test values carry no escapes)
            printf 'subjectAltName = %s\n' "$(printf '%s' "$SCEP_SANS" |
                sed -e 's/^dns:/DNS:/' -e 's/,dns:/,DNS:/g' \
                    -e 's/^ip:/IP:/' -e 's/,ip:/,IP:/g' \
                    -e 's/^uri:/URI:/' -e 's/,uri:/,URI:/g')"
        fi
    } > "$work/ext.cnf"
    if ! openssl x509 -req -in "$csr" -sha256 -days "$days" \
            -CA "$cadir/ca.pem" -CAkey "$cadir/ca.key" \
            -extfile "$work/ext.cnf" -out "$work/cert.pem" \
            2>"$work/openssl.err"; then
        echo "openssl x509 -req failed: $(tr '\n' ' ' < "$work/openssl.err")" >&2
        exit 1
    fi
    cat "$work/cert.pem"
}

case $mode in
sign)
    cat > "$work/csr.pem"
    sign "$work/csr.pem"
    exit 0
    ;;
pending)
    if [ "$op" = enroll ]; then
        ref="ticket-$tid"
        cat > "$cadir/pending/$ref.csr"
        echo "${SCEP_VALIDITY_DAYS:-30}" > "$cadir/pending/$ref.days"
        echo wait > "$cadir/pending/$ref.state"
        echo "$ref"
        exit 3
    fi
    ref=$(printf '%s' "${SCEP_REFERENCE:-}" | tr -c 'A-Za-z0-9._-' '_')
    if [ ! -f "$cadir/pending/$ref.state" ]; then
        echo "no such ticket: ${SCEP_REFERENCE:-}" >&2
        exit 1
    fi
    # the CSR on stdin must be the one kept at enrollment
    cat > "$work/csr.pem"
    if ! cmp -s "$work/csr.pem" "$cadir/pending/$ref.csr"; then
        echo "poll of $ref: not the CSR of the ticket" >&2
        exit 1
    fi
    state=$(head -n 1 "$cadir/pending/$ref.state")
    case $state in
    issue)
        sign "$work/csr.pem" "$(cat "$cadir/pending/$ref.days")"
        echo issued > "$cadir/pending/$ref.state"
        exit 0
        ;;
    reject)
        echo "ticket $ref was rejected by the CA operator" >&2
        exit 2
        ;;
    *)
        echo "$ref"
        exit 3
        ;;
    esac
    ;;
reject)
    cat > /dev/null
    echo "the example CA refuses subject ${SCEP_SUBJECT:-?}" >&2
    echo "a second line that is not the reason" >&2
    exit 2
    ;;
down)
    echo "cannot connect to ca-backend.example:8443: connection refused" >&2
    exit 1
    ;;
missing)
    exec "$cadir/no-such-ca-backend" "$@"
    ;;
slow)
    echo "waiting for the CA..." >&2
    sleep 30
    cat > /dev/null
    exit 0
    ;;
garbage)
    echo "Hello from the CA program: this is not a certificate"
    exit 0
    ;;
notcert)
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null
    exit 0
    ;;
otherkey)
    cat > /dev/null
    openssl req -new -newkey rsa:2048 -nodes -keyout "$work/other.key" \
        -subj "/CN=someone else" -out "$work/other.csr" 2>/dev/null
    sign "$work/other.csr"
    exit 0
    ;;
crash)
    kill -SEGV $$
    exit 1
    ;;
*)
    echo "unknown mode $mode" >&2
    exit 64
    ;;
esac
