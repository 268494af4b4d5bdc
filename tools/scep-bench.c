/* Licensed under the Apache License, Version 2.0.
 *
 * scep-bench: the load generator of the benchmark (bench/run.sh, "make
 * bench").  Built on the core codec (scep_req_encode, scep_certrep_decode)
 * like the test client, it measures any SCEP server -- mod_scep, micromdm's
 * scepserver -- the same way.
 *
 *   scep-bench rsa [--threads N] [--seconds S] [--cache DIR]
 *       RSA-2048 private operations per second in N threads: the bound of
 *       an enrollment, which costs three of them on the server (RA decrypt,
 *       CA sign, RA sign).
 *   scep-bench enroll URL (--challenge PW | --otp ADMIN_URL --otp-auth U:P)
 *       PKCSReq at each concurrency of --concurrency for --seconds each.
 *   scep-bench get URL [--query Q]
 *       GET URL?Q (GetCACert, or a static file) at each concurrency.
 *
 * What is measured is the server, not this program: every request is built
 * before a level starts (keys from a pool made once and cached in --cache,
 * a fresh CSR, transactionID, senderNonce and one-time password for each
 * request), the workers only send bytes and read replies over keep-alive
 * HTTP/1.1 (one APR socket per worker thread), and replies are checked
 * after the level: every reply's signature, status, transactionID and
 * recipientNonce, and --verify of them completely (decrypted with the
 * request key, the issued certificate checked against the CA).
 *
 * Prints one JSON object on stdout, progress on stderr.  Exit status 0 when
 * the measurement ran (whatever the server answered), 1 on a setup error,
 * 64 on a usage error.  Every loop is bounded in time (--seconds) and count
 * (--max).
 */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_uri.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "scep_msg.h"
#include "scep_pki.h"

#define EXIT_OK          0
#define EXIT_ERROR       1
#define EXIT_USAGE       64

#define MAX_LEVELS       16
#define MAX_CONCURRENCY  1024
#define MAX_KEYS         4096
#define MAX_REPLY        (16 * 1024 * 1024)
#define SOCKET_TIMEOUT   30          /* seconds, per send or receive */
#define OTP_FETCHERS     4           /* connections fetching passwords */
#define PW_MAX           64          /* longest one-time password kept */

/* ---- options ----------------------------------------------------------- */

typedef struct {
    const char *cmd;
    const char *url;
    const char *cache;
    int nkeys;
    int bits;
    int threads;                 /* rsa threads, request builders */
    double seconds;              /* per level (rsa: in all) */
    int max;                     /* requests per level at most */
    int levels[MAX_LEVELS];
    int nlevels;
    int warmup;
    const char *challenge;
    const char *otp_url;
    const char *otp_auth;
    const char *cipher;
    const char *digest;
    int verify;
    const char *label;
    int rss_ppid;
    int server_pid;
    const char *query;
} opts_t;

static opts_t o;
static apr_pool_t *gpool;

static void progress(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("scep-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("scep-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Monotonic microseconds. */
static apr_int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *hexstr(const unsigned char *d, apr_size_t n,
                          apr_pool_t *p)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, 2 * n + 1);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
    return out;
}

/* ---- HTTP over keep-alive connections ---------------------------------- */

typedef struct {
    const char *host;
    apr_port_t port;
    const char *hostport;        /* the Host header */
    const char *path;            /* path without the query */
    const char *query;           /* the URL's own query, or NULL */
    apr_sockaddr_t *sa;
} target_t;

typedef struct {
    apr_pool_t *p;               /* the socket's pool, one per connection */
    apr_socket_t *s;
    unsigned char *buf;          /* received bytes, NUL-terminated */
    apr_size_t have, cap;
    unsigned char *body;         /* chunked bodies, decoded */
    apr_size_t body_cap;
    int reconnects;
    int reused;                  /* the socket has served a reply before */
} conn_t;

static apr_status_t target_parse(target_t *t, const char *url, apr_pool_t *p)
{
    apr_uri_t uri;

    memset(t, 0, sizeof(*t));
    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || uri.hostname == NULL
        || uri.scheme == NULL || strcasecmp(uri.scheme, "http") != 0) {
        return APR_EINVAL;
    }
    t->host = uri.hostname;
    t->port = uri.port ? uri.port : 80;
    t->hostport = uri.port_str ? apr_pstrcat(p, uri.hostname, ":",
                                             uri.port_str, NULL)
                               : uri.hostname;
    t->path = uri.path ? uri.path : "/";
    t->query = uri.query;
    return apr_sockaddr_info_get(&t->sa, t->host, APR_UNSPEC, t->port, 0, p);
}

/* PATH?[own query&]Q */
static const char *target_uri(const target_t *t, const char *q,
                              apr_pool_t *p)
{
    if (t->query && q) {
        return apr_pstrcat(p, t->path, "?", t->query, "&", q, NULL);
    }
    if (t->query || q) {
        return apr_pstrcat(p, t->path, "?", t->query ? t->query : q, NULL);
    }
    return t->path;
}

static void conn_close(conn_t *c)
{
    if (c->s) {
        apr_socket_close(c->s);
        c->s = NULL;
    }
    if (c->p) {
        apr_pool_destroy(c->p);
        c->p = NULL;
    }
    c->reused = 0;
}

static void conn_free(conn_t *c)
{
    conn_close(c);
    free(c->buf);
    free(c->body);
    memset(c, 0, sizeof(*c));
}

static apr_status_t conn_open(conn_t *c, const target_t *t)
{
    apr_status_t rv;

    conn_close(c);
    if ((rv = apr_pool_create(&c->p, NULL)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_socket_create(&c->s, t->sa->family, SOCK_STREAM, APR_PROTO_TCP,
                           c->p);
    if (rv == APR_SUCCESS) {
        apr_socket_opt_set(c->s, APR_TCP_NODELAY, 1);
        apr_socket_timeout_set(c->s, apr_time_from_sec(SOCKET_TIMEOUT));
        rv = apr_socket_connect(c->s, t->sa);
    }
    if (rv != APR_SUCCESS) {
        conn_close(c);
    }
    return rv;
}

static apr_status_t send_all(apr_socket_t *s, const char *d, apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;

    while (rv == APR_SUCCESS && len > 0) {
        apr_size_t n = len;
        rv = apr_socket_send(s, d, &n);
        d += n;
        len -= n;
    }
    return rv;
}

static int grow(unsigned char **buf, apr_size_t *cap, apr_size_t want)
{
    apr_size_t n = *cap ? *cap : 16384;
    unsigned char *nb;

    if (want <= *cap) {
        return 1;
    }
    while (n < want) {
        n *= 2;
    }
    if (n > MAX_REPLY + 1) {
        return 0;
    }
    nb = realloc(*buf, n);
    if (nb == NULL) {
        return 0;
    }
    *buf = nb;
    *cap = n;
    return 1;
}

/* Value of header NAME in the head [h, end), or NULL. */
static const char *header_value(const char *h, const char *end,
                                const char *name, apr_size_t *vlen)
{
    apr_size_t nl = strlen(name);

    while (h < end) {
        const char *eol = memchr(h, '\n', (apr_size_t)(end - h));
        if (eol == NULL) {
            eol = end;
        }
        if ((apr_size_t)(eol - h) > nl && strncasecmp(h, name, nl) == 0
            && h[nl] == ':') {
            const char *v = h + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) {
                ve--;
            }
            *vlen = (apr_size_t)(ve - v);
            return v;
        }
        h = eol + 1;
    }
    return NULL;
}

/*
 * A chunked body that starts at c->buf + start: 1 when complete (decoded
 * into c->body, *blen), 0 when more bytes are needed, -1 when malformed.
 */
static int dechunk(conn_t *c, apr_size_t start, apr_size_t *blen)
{
    apr_size_t pos = start, out = 0;

    for (;;) {
        unsigned char *eol;
        char *end;
        unsigned long size;

        eol = memchr(c->buf + pos, '\n', c->have - pos);
        if (eol == NULL) {
            return 0;
        }
        size = strtoul((const char *)c->buf + pos, &end, 16);
        if (end == (const char *)c->buf + pos || size > MAX_REPLY) {
            return -1;
        }
        pos = (apr_size_t)(eol - c->buf) + 1;
        if (size == 0) {
            /* trailers up to an empty line */
            for (;;) {
                eol = memchr(c->buf + pos, '\n', c->have - pos);
                if (eol == NULL) {
                    return 0;
                }
                if (eol == c->buf + pos
                    || (eol == c->buf + pos + 1 && c->buf[pos] == '\r')) {
                    *blen = out;
                    return 1;
                }
                pos = (apr_size_t)(eol - c->buf) + 1;
            }
        }
        if (c->have - pos < size + 2) {
            return 0;
        }
        if (!grow(&c->body, &c->body_cap, out + size + 1)) {
            return -1;
        }
        memcpy(c->body + out, c->buf + pos, size);
        out += size;
        pos += size;
        if (c->buf[pos] == '\r') {
            pos++;
        }
        if (c->buf[pos] == '\n') {
            pos++;
        }
    }
}

/*
 * One request and its reply on the connection (opened when needed, opened
 * again once when a kept-alive connection turns out closed before any byte
 * of the reply).  *body points into the connection's buffers, valid until
 * the next exchange.  *status is the HTTP status.
 */
static apr_status_t http_exchange(conn_t *c, const target_t *t,
                                  const char *req, apr_size_t len,
                                  int *status, const unsigned char **body,
                                  apr_size_t *blen)
{
    apr_status_t rv;
    int attempt;

    *status = 0;
    *body = NULL;
    *blen = 0;
    for (attempt = 0; attempt < 2; attempt++) {
        const char *hend = NULL;
        apr_size_t hlen = 0, clen = 0, vlen;
        int have_clen = 0, chunked = 0, close_after = 0, done = 0;
        int was_reused;

        if (c->s == NULL) {
            if ((rv = conn_open(c, t)) != APR_SUCCESS) {
                return rv;
            }
            if (attempt > 0) {
                c->reconnects++;
            }
        }
        was_reused = c->reused;
        c->have = 0;
        rv = send_all(c->s, req, len);
        if (rv != APR_SUCCESS) {
            conn_close(c);
            if (was_reused) {
                continue;
            }
            return rv;
        }
        while (!done) {
            apr_size_t n;

            if (!grow(&c->buf, &c->cap, c->have + 16384 + 1)) {
                conn_close(c);
                return APR_ENOSPC;
            }
            n = c->cap - c->have - 1;
            rv = apr_socket_recv(c->s, (char *)c->buf + c->have, &n);
            c->have += n;
            c->buf[c->have] = 0;
            if (rv == APR_EOF || (rv != APR_SUCCESS && n == 0)) {
                if (c->have == 0 && was_reused) {
                    break;          /* closed while idle: send again */
                }
                if (rv == APR_EOF && hend && !have_clen && !chunked) {
                    /* a body delimited by the end of the connection */
                    *body = c->buf + hlen;
                    *blen = c->have - hlen;
                    conn_close(c);
                    return APR_SUCCESS;
                }
                conn_close(c);
                return rv == APR_EOF ? APR_ECONNRESET : rv;
            }
            if (hend == NULL) {
                const char *e = strstr((const char *)c->buf, "\r\n\r\n");
                const char *v;
                if (e == NULL) {
                    if (c->have > 65536) {
                        conn_close(c);
                        return APR_EGENERAL;
                    }
                    continue;
                }
                hend = e;
                hlen = (apr_size_t)(e - (const char *)c->buf) + 4;
                if (c->have < 12
                    || strncmp((const char *)c->buf, "HTTP/1.", 7) != 0) {
                    conn_close(c);
                    return APR_EGENERAL;
                }
                *status = atoi((const char *)c->buf + 9);
                if (c->buf[7] == '0') {
                    close_after = 1;
                }
                v = header_value((const char *)c->buf, hend, "Content-Length",
                                 &vlen);
                if (v) {
                    have_clen = 1;
                    clen = (apr_size_t)apr_atoi64(v);
                    if (clen > MAX_REPLY) {
                        conn_close(c);
                        return APR_ENOSPC;
                    }
                }
                v = header_value((const char *)c->buf, hend,
                                 "Transfer-Encoding", &vlen);
                if (v && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0) {
                    chunked = 1;
                    have_clen = 0;
                }
                v = header_value((const char *)c->buf, hend, "Connection",
                                 &vlen);
                if (v && vlen >= 5 && strncasecmp(v, "close", 5) == 0) {
                    close_after = 1;
                }
                else if (v && vlen >= 10
                         && strncasecmp(v, "keep-alive", 10) == 0) {
                    close_after = 0;
                }
            }
            if (have_clen) {
                if (c->have >= hlen + clen) {
                    *body = c->buf + hlen;
                    *blen = clen;
                    done = 1;
                }
            }
            else if (chunked) {
                int r = dechunk(c, hlen, blen);
                if (r < 0) {
                    conn_close(c);
                    return APR_EGENERAL;
                }
                if (r > 0) {
                    *body = c->body;
                    done = 1;
                }
            }
        }
        if (!done) {
            conn_close(c);      /* retry on a fresh connection */
            continue;
        }
        if (close_after) {
            /* body stays valid: the buffers outlive the socket */
            conn_close(c);
        }
        else {
            c->reused = 1;
        }
        return APR_SUCCESS;
    }
    return APR_ECONNRESET;
}

/* GET of one resource on a fresh connection (setup, not measured). */
static apr_status_t http_get_once(const target_t *t, const char *uri,
                                  const char *extra_headers, int *status,
                                  const unsigned char **body,
                                  apr_size_t *blen, apr_pool_t *p)
{
    conn_t c;
    const char *req = apr_psprintf(p, "GET %s HTTP/1.1\r\nHost: %s\r\n"
                                   "User-Agent: scep-bench\r\n%s"
                                   "Connection: close\r\n\r\n", uri,
                                   t->hostport,
                                   extra_headers ? extra_headers : "");
    const unsigned char *b;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    rv = http_exchange(&c, t, req, strlen(req), status, &b, blen);
    if (rv == APR_SUCCESS) {
        *body = apr_pmemdup(p, b, *blen + 1);
    }
    conn_free(&c);
    return rv;
}

/* ---- the server's processes, the machine -------------------------------- */

typedef struct {
    int n;                       /* processes */
    long kb;                     /* sum of VmRSS */
    double cpu_s;                /* sum of user and system time */
    char list[512];              /* "\"pid\": kB, ..." */
} procs_t;

/* The children of --rss-ppid and the process --server-pid. */
static void server_procs(procs_t *r)
{
    DIR *d;
    struct dirent *e;
    long hz = sysconf(_SC_CLK_TCK);

    memset(r, 0, sizeof(*r));
    if ((o.rss_ppid <= 0 && o.server_pid <= 0)
        || (d = opendir("/proc")) == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char path[64], line[1024];
        const char *rp;
        FILE *f;
        unsigned long ut = 0, st = 0;
        int pid, parent = -1;
        long kb = -1;

        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        pid = atoi(e->d_name);
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        if ((f = fopen(path, "r")) == NULL) {
            continue;
        }
        if (fgets(line, sizeof(line), f) && (rp = strrchr(line, ')'))) {
            sscanf(rp + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                   "%lu %lu", &parent, &ut, &st);
        }
        fclose(f);
        if (!((o.rss_ppid > 0 && parent == o.rss_ppid)
              || (o.server_pid > 0 && pid == o.server_pid))) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        if ((f = fopen(path, "r")) == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "VmRSS:", 6) == 0) {
                kb = atol(line + 6);
            }
        }
        fclose(f);
        if (kb >= 0) {
            apr_size_t l = strlen(r->list);
            r->n++;
            r->kb += kb;
            r->cpu_s += (double)(ut + st) / (double)(hz > 0 ? hz : 100);
            snprintf(r->list + l, sizeof(r->list) - l, "%s\"%d\": %ld",
                     l ? ", " : "", pid, kb);
        }
    }
    closedir(d);
}

/* CPU time used by the whole machine (all CPUs), seconds. */
static double machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[10] = { 0 }, busy = 0;
    long hz = sysconf(_SC_CLK_TCK);
    int i;

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) {
        fclose(f);
        return 0;
    }
    fclose(f);
    for (i = 0; i < 8; i++) {
        if (i != 3 && i != 4) {           /* idle, iowait */
            busy += v[i];
        }
    }
    return (double)busy / (double)(hz > 0 ? hz : 100);
}

/* CPU time of this program, seconds. */
static double self_cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
           + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- the measured loop -------------------------------------------------- */

typedef struct {
    const char *wire;            /* the whole HTTP request; NULL: run->req */
    apr_size_t wire_len;
    int key;                     /* index in the key pool */
    const char *tid;
    const char *cn;
    unsigned char nonce[SCEP_NONCE_LEN];
    /* outcome, written by the worker that sent it */
    int sent;
    int http_status;             /* 0: transport error */
    int same;                    /* get: the body was the expected bytes */
    unsigned char *reply;        /* malloc'd when kept */
    apr_size_t reply_len;
    apr_int64_t lat_us;
} job_t;

typedef struct {
    const target_t *t;
    job_t *jobs;
    apr_uint32_t njobs;
    volatile apr_uint32_t next;
    apr_int64_t start_us, deadline_us;
    const char *req;             /* for jobs without wire */
    apr_size_t req_len;
    const unsigned char *expect; /* get: the expected body */
    apr_size_t expect_len;
    int keep_replies;
} run_t;

typedef struct {
    run_t *run;
    conn_t conn;
    apr_int64_t last_done_us;
    int errors;
} worker_t;

static void *APR_THREAD_FUNC worker_main(apr_thread_t *thr, void *data)
{
    worker_t *w = data;
    run_t *run = w->run;

    (void)thr;
    for (;;) {
        apr_uint32_t i;
        job_t *j;
        const unsigned char *body;
        apr_size_t blen;
        apr_int64_t t0, t1;
        apr_status_t rv;
        int status;

        if (now_us() >= run->deadline_us) {
            break;
        }
        i = apr_atomic_inc32(&run->next);
        if (i >= run->njobs) {
            break;
        }
        j = &run->jobs[i];
        t0 = now_us();
        rv = http_exchange(&w->conn, run->t, j->wire ? j->wire : run->req,
                           j->wire ? j->wire_len : run->req_len, &status,
                           &body, &blen);
        t1 = now_us();
        j->sent = 1;
        j->lat_us = t1 - t0;
        w->last_done_us = t1;
        if (rv != APR_SUCCESS) {
            j->http_status = 0;
            w->errors++;
            continue;
        }
        j->http_status = status;
        if (run->expect) {
            j->same = blen == run->expect_len
                      && memcmp(body, run->expect, blen) == 0;
        }
        if (run->keep_replies && blen > 0) {
            j->reply = malloc(blen);
            if (j->reply) {
                memcpy(j->reply, body, blen);
                j->reply_len = blen;
            }
        }
    }
    conn_free(&w->conn);
    return NULL;
}

typedef struct {
    int concurrency;
    apr_uint32_t offered;        /* requests prepared */
    apr_uint32_t sent;
    double seconds;              /* first send to last reply */
    int exhausted;               /* ran out of prepared requests */
    int reconnects;
    int transport_errors;
    int http_200, http_other;
    double p50_ms, p90_ms, p99_ms, max_ms, mean_ms;
    double server_cpu_s;         /* CPU time of the server's processes */
    double client_cpu_s;         /* of this program */
    double machine_cpu_s;        /* of the whole machine */
    long server_kb;              /* the server's memory at the end */
} level_t;

static int cmp_i64(const void *a, const void *b)
{
    apr_int64_t x = *(const apr_int64_t *)a, y = *(const apr_int64_t *)b;

    return x < y ? -1 : x > y;
}

static double pct(const apr_int64_t *v, apr_size_t n, double q)
{
    apr_size_t i;

    if (n == 0) {
        return 0;
    }
    i = (apr_size_t)(q * (double)(n - 1) + 0.5);
    if (i >= n) {
        i = n - 1;
    }
    return (double)v[i] / 1000.0;
}

/* Send run->jobs with @a conc connections until the deadline or the end. */
static apr_status_t run_level(run_t *run, int conc, double seconds,
                              level_t *lv)
{
    apr_thread_t *th[MAX_CONCURRENCY];
    worker_t *w = calloc((size_t)conc, sizeof(*w));
    apr_threadattr_t *attr;
    apr_pool_t *p;
    apr_int64_t *lat, last = 0, sum = 0;
    apr_size_t nlat = 0, i;
    apr_status_t rv, trv;
    procs_t before, after;
    double client0, machine0;
    int k, started = 0;

    memset(lv, 0, sizeof(*lv));
    lv->concurrency = conc;
    lv->offered = run->njobs;
    if (w == NULL) {
        return APR_ENOMEM;
    }
    apr_pool_create(&p, gpool);
    apr_threadattr_create(&attr, p);
    apr_threadattr_stacksize_set(attr, 256 * 1024);
    server_procs(&before);
    client0 = self_cpu_s();
    machine0 = machine_busy_s();
    run->next = 0;
    run->start_us = now_us();
    run->deadline_us = run->start_us + (apr_int64_t)(seconds * 1e6);
    rv = APR_SUCCESS;
    for (k = 0; k < conc; k++) {
        w[k].run = run;
        rv = apr_thread_create(&th[k], attr, worker_main, &w[k], p);
        if (rv != APR_SUCCESS) {
            break;
        }
        started++;
    }
    for (k = 0; k < started; k++) {
        apr_thread_join(&trv, th[k]);
        if (w[k].last_done_us > last) {
            last = w[k].last_done_us;
        }
        lv->reconnects += w[k].conn.reconnects;
        lv->transport_errors += w[k].errors;
    }
    server_procs(&after);
    lv->server_cpu_s = after.cpu_s - before.cpu_s;
    lv->server_kb = after.kb;
    lv->client_cpu_s = self_cpu_s() - client0;
    lv->machine_cpu_s = machine_busy_s() - machine0;
    lv->exhausted = apr_atomic_read32(&run->next) >= run->njobs
                    && last < run->deadline_us;
    lv->seconds = last > run->start_us ? (double)(last - run->start_us) / 1e6
                                       : 0;
    lat = malloc(sizeof(*lat) * (run->njobs ? run->njobs : 1));
    for (i = 0; lat && i < run->njobs; i++) {
        job_t *j = &run->jobs[i];
        if (!j->sent) {
            continue;
        }
        lv->sent++;
        if (j->http_status == 200) {
            lv->http_200++;
        }
        else if (j->http_status != 0) {
            lv->http_other++;
        }
        if (j->http_status != 0) {
            lat[nlat++] = j->lat_us;
            sum += j->lat_us;
        }
    }
    if (lat && nlat > 0) {
        qsort(lat, nlat, sizeof(*lat), cmp_i64);
        lv->p50_ms = pct(lat, nlat, 0.50);
        lv->p90_ms = pct(lat, nlat, 0.90);
        lv->p99_ms = pct(lat, nlat, 0.99);
        lv->max_ms = (double)lat[nlat - 1] / 1000.0;
        lv->mean_ms = (double)sum / (double)nlat / 1000.0;
    }
    free(lat);
    free(w);
    apr_pool_destroy(p);
    return rv;
}

static void print_level_common(const level_t *lv)
{
    double secs = lv->seconds > 0 ? lv->seconds : 1;
    double other = lv->machine_cpu_s - lv->server_cpu_s - lv->client_cpu_s;

    printf("\"concurrency\": %d, \"seconds\": %.3f, \"offered\": %u, "
           "\"sent\": %u, \"exhausted\": %s, \"http_200\": %d, "
           "\"http_other\": %d, \"transport_errors\": %d, "
           "\"reconnects\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f",
           lv->concurrency, lv->seconds, lv->offered, lv->sent,
           lv->exhausted ? "true" : "false", lv->http_200, lv->http_other,
           lv->transport_errors, lv->reconnects, lv->p50_ms, lv->p90_ms,
           lv->p99_ms, lv->max_ms, lv->mean_ms);
    /* CPUs busy on average: the server (when --rss-ppid/--server-pid say
     * which processes it is), this program, everything else */
    printf(", \"server_cores\": %.2f, \"client_cores\": %.2f, "
           "\"other_cores\": %.2f", lv->server_cpu_s / secs,
           lv->client_cpu_s / secs, (other > 0 ? other : 0) / secs);
    if (o.rss_ppid > 0 || o.server_pid > 0) {
        printf(", \"server_rss_kb\": %ld", lv->server_kb);
    }
}

/* ---- keys --------------------------------------------------------------- */

typedef struct {
    EVP_PKEY *key;
    X509 *cert;                  /* self-signed, what the request is signed
                                  * with */
} bkey_t;

typedef struct {
    bkey_t *keys;
    int from, to, made;
    const char *dir;
    int bits;
    const char *err;
} keygen_t;

static const char *key_path(const char *dir, int bits, int i, apr_pool_t *p)
{
    return apr_psprintf(p, "%s/rsa%d-%03d.pem", dir, bits, i);
}

static void *APR_THREAD_FUNC keygen_main(apr_thread_t *thr, void *data)
{
    keygen_t *g = data;
    int i;

    (void)thr;
    for (i = g->from; i < g->to; i++) {
        char path[4096], tmp[4200];
        BIO *b;
        EVP_PKEY *k;

        if (g->keys[i].key) {
            continue;
        }
        k = EVP_RSA_gen((unsigned int)g->bits);
        if (k == NULL) {
            g->err = "RSA key generation failed";
            return NULL;
        }
        snprintf(path, sizeof(path), "%s/rsa%d-%03d.pem", g->dir, g->bits, i);
        snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
        b = BIO_new_file(tmp, "w");
        if (b == NULL || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
                                                   NULL)) {
            BIO_free(b);
            EVP_PKEY_free(k);
            g->err = "cannot write a key into the cache";
            return NULL;
        }
        BIO_free(b);
        chmod(tmp, 0600);
        if (rename(tmp, path) != 0) {
            EVP_PKEY_free(k);
            g->err = "cannot rename a key into the cache";
            return NULL;
        }
        g->keys[i].key = k;
        g->made++;
    }
    return NULL;
}

/* The self-signed certificate SCEP clients sign their first request with. */
static X509 *self_signed(EVP_PKEY *key, int i, const EVP_MD *md)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = BN_new();
    char cn[64];
    int ok;

    snprintf(cn, sizeof(cn), "scep-bench key %d", i);
    ok = x && name && bn
         && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *)cn, -1, -1, 0)
         && X509_set_version(x, X509_VERSION_3)
         && BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY)
         && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))
         && X509_set_subject_name(x, name)
         && X509_set_issuer_name(x, name)
         && X509_gmtime_adj(X509_getm_notBefore(x), -3600)
         && X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400)
         && X509_set_pubkey(x, key)
         && X509_sign(x, key, md);
    BN_free(bn);
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The key pool: load what the cache has, make (and cache) the rest. */
static int load_keys(bkey_t **pkeys, int n, const EVP_MD *md)
{
    bkey_t *keys = apr_pcalloc(gpool, sizeof(*keys) * (apr_size_t)n);
    keygen_t g[2];
    apr_thread_t *th[2];
    apr_status_t trv;
    apr_int64_t t0 = now_us();
    int i, missing = 0, nth = o.threads > 1 ? 2 : 1;

    if (mkdir(o.cache, 0700) != 0 && errno != EEXIST) {
        return fail(EXIT_ERROR, "cannot create %s: %s", o.cache,
                    strerror(errno));
    }
    for (i = 0; i < n; i++) {
        const char *path = key_path(o.cache, o.bits, i, gpool);
        BIO *b = BIO_new_file(path, "r");
        if (b) {
            keys[i].key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
            BIO_free(b);
        }
        if (keys[i].key && EVP_PKEY_get_bits(keys[i].key) != o.bits) {
            EVP_PKEY_free(keys[i].key);
            keys[i].key = NULL;
        }
        missing += keys[i].key == NULL;
    }
    if (missing) {
        progress("making %d RSA-%d keys for the cache %s (once)", missing,
                 o.bits, o.cache);
        for (i = 0; i < nth; i++) {
            memset(&g[i], 0, sizeof(g[i]));
            g[i].keys = keys;
            g[i].from = n * i / nth;
            g[i].to = n * (i + 1) / nth;
            g[i].dir = o.cache;
            g[i].bits = o.bits;
            if (apr_thread_create(&th[i], NULL, keygen_main, &g[i], gpool)
                != APR_SUCCESS) {
                return fail(EXIT_ERROR, "cannot start a thread");
            }
        }
        for (i = 0; i < nth; i++) {
            apr_thread_join(&trv, th[i]);
            if (g[i].err) {
                return fail(EXIT_ERROR, "%s: %s", g[i].err,
                            scep_ssl_errors(gpool));
            }
        }
        progress("keys made in %.1f s", (double)(now_us() - t0) / 1e6);
    }
    for (i = 0; i < n; i++) {
        scep_own_pkey(gpool, keys[i].key);
        if (md) {
            keys[i].cert = self_signed(keys[i].key, i, md);
            if (keys[i].cert == NULL) {
                return fail(EXIT_ERROR, "self-signed certificate: %s",
                            scep_ssl_errors(gpool));
            }
            scep_own_x509(gpool, keys[i].cert);
        }
    }
    *pkeys = keys;
    return EXIT_OK;
}

/* ---- rsa ---------------------------------------------------------------- */

typedef struct {
    EVP_PKEY *key;
    apr_int64_t deadline_us;
    long ops;
    int err;
} rsa_worker_t;

static void *APR_THREAD_FUNC rsa_main(apr_thread_t *thr, void *data)
{
    rsa_worker_t *w = data;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(w->key, NULL);
    unsigned char md[32], sig[1024];
    size_t siglen;

    (void)thr;
    memset(md, 0x5a, sizeof(md));
    if (ctx == NULL || EVP_PKEY_sign_init(ctx) <= 0
        || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0
        || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0) {
        w->err = 1;
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    while (now_us() < w->deadline_us) {
        int k;
        for (k = 0; k < 16; k++) {
            siglen = sizeof(sig);
            if (EVP_PKEY_sign(ctx, sig, &siglen, md, sizeof(md)) <= 0) {
                w->err = 1;
                EVP_PKEY_CTX_free(ctx);
                return NULL;
            }
            w->ops++;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    return NULL;
}

static int cmd_rsa(void)
{
    bkey_t *keys;
    rsa_worker_t w[64];
    apr_thread_t *th[64];
    apr_status_t trv;
    apr_int64_t t0, t1;
    long ops = 0;
    int i, rc, n = o.threads;
    double secs, per_s, cpu0, cpu_ms;

    if (n < 1 || n > 64) {
        return fail(EXIT_USAGE, "--threads: 1 to 64");
    }
    if ((rc = load_keys(&keys, 1, NULL)) != EXIT_OK) {
        return rc;
    }
    cpu0 = self_cpu_s();
    t0 = now_us();
    for (i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].key = keys[0].key;
        w[i].deadline_us = t0 + (apr_int64_t)(o.seconds * 1e6);
        if (apr_thread_create(&th[i], NULL, rsa_main, &w[i], gpool)
            != APR_SUCCESS) {
            return fail(EXIT_ERROR, "cannot start a thread");
        }
    }
    for (i = 0; i < n; i++) {
        apr_thread_join(&trv, th[i]);
        if (w[i].err) {
            return fail(EXIT_ERROR, "EVP_PKEY_sign: %s",
                        scep_ssl_errors(gpool));
        }
        ops += w[i].ops;
    }
    t1 = now_us();
    cpu_ms = ops > 0 ? (self_cpu_s() - cpu0) * 1000 / (double)ops : 0;
    secs = (double)(t1 - t0) / 1e6;
    per_s = (double)ops / secs;
    progress("RSA-%d sign: %ld in %.2f s with %d threads: %.0f/s, "
             "%.0f enrollments/s at 3 per enrollment; %.3f ms of CPU each",
             o.bits, ops, secs, n, per_s, per_s / 3, cpu_ms);
    /* cpu_ms_per_op does not depend on what else the machine runs: the
     * bound of an idle machine is threads * 1000 / (3 * cpu_ms_per_op) */
    printf("{\"bits\": %d, \"threads\": %d, \"seconds\": %.3f, "
           "\"rsa_private_ops\": %ld, \"rsa_private_per_s\": %.1f, "
           "\"rsa_ops_per_enrollment\": 3, "
           "\"rsa_bound_enroll_per_s\": %.1f, \"cpu_ms_per_op\": %.4f, "
           "\"idle_bound_enroll_per_s\": %.1f}\n", o.bits, n, secs, ops,
           per_s, per_s / 3, cpu_ms,
           cpu_ms > 0 ? n * 1000.0 / (3 * cpu_ms) : 0);
    return EXIT_OK;
}

/* ---- enroll ------------------------------------------------------------- */

typedef struct {
    target_t t;
    const char *op_uri;          /* PATH?operation=PKIOperation */
    STACK_OF(X509) *ca_certs;    /* GetCACert, in server order */
    STACK_OF(X509) *recipients;
    X509_STORE *trust;           /* the CA certificates */
    bkey_t *keys;
    const EVP_CIPHER *cipher;
    const EVP_MD *digest;
    const char *prefix;          /* of CNs: unique per run */
    apr_uint32_t serial;         /* requests made so far */
    target_t admin;
    const char *admin_headers;
} bench_t;

typedef struct {
    bench_t *b;
    job_t *jobs;
    char (*pw)[PW_MAX];
    int from, to;
    apr_pool_t *p;
    const char *err;
} gen_t;

/* One PKCSReq: CSR with the password, signed, enveloped, HTTP head. */
static const char *make_job(bench_t *b, job_t *j, apr_uint32_t serial,
                            const char *pw, apr_pool_t *p)
{
    bkey_t *k = &b->keys[serial % (apr_uint32_t)o.nkeys];
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char *csr = NULL, md[SHA_DIGEST_LENGTH];
    const unsigned char *der;
    apr_size_t len;
    scep_req_t r;
    const char *why = NULL, *head;
    char *wire;
    int n;

    j->key = (int)(serial % (apr_uint32_t)o.nkeys);
    j->cn = apr_psprintf(p, "%s-%u", b->prefix, serial);
    SHA1((const unsigned char *)j->cn, strlen(j->cn), md);
    j->tid = hexstr(md, sizeof(md), p);
    if (RAND_bytes(j->nonce, SCEP_NONCE_LEN) != 1) {
        why = "no random nonce";
        goto leave;
    }
    if (req == NULL || name == NULL
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *)j->cn, -1, -1,
                                       0)
        || !X509_REQ_set_version(req, 0)
        || !X509_REQ_set_subject_name(req, name)
        || !X509_REQ_set_pubkey(req, k->key)
        || !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                      V_ASN1_PRINTABLESTRING,
                                      (const unsigned char *)pw,
                                      (int)strlen(pw))
        || !X509_REQ_sign(req, k->key, EVP_sha256())
        || (n = i2d_X509_REQ(req, &csr)) <= 0) {
        why = "building the CSR";
        goto leave;
    }
    memset(&r, 0, sizeof(r));
    r.message_type = SCEP_MT_PKCSREQ;
    r.transaction_id = j->tid;
    r.sender_nonce = j->nonce;
    r.content = csr;
    r.content_len = (apr_size_t)n;
    r.recipients = b->recipients;
    r.cipher = b->cipher;
    r.signer_cert = k->cert;
    r.signer_key = k->key;
    r.digest = b->digest;
    if (scep_req_encode(&der, &len, &r, &why, p) != APR_SUCCESS) {
        goto leave;
    }
    head = apr_psprintf(p, "POST %s HTTP/1.1\r\nHost: %s\r\n"
                        "User-Agent: scep-bench\r\n"
                        "Content-Type: application/x-pki-message\r\n"
                        "Content-Length: %" APR_SIZE_T_FMT "\r\n\r\n",
                        b->op_uri, b->t.hostport, len);
    j->wire_len = strlen(head) + len;
    wire = apr_palloc(p, j->wire_len);
    memcpy(wire, head, strlen(head));
    memcpy(wire + strlen(head), der, len);
    j->wire = wire;

leave:
    OPENSSL_free(csr);
    X509_REQ_free(req);
    X509_NAME_free(name);
    return why;
}

static void *APR_THREAD_FUNC gen_main(apr_thread_t *thr, void *data)
{
    gen_t *g = data;
    int i;

    (void)thr;
    for (i = g->from; i < g->to && g->err == NULL; i++) {
        const char *pw = g->pw ? g->pw[i] : o.challenge;
        g->err = make_job(g->b, &g->jobs[i],
                          g->b->serial + (apr_uint32_t)i, pw, g->p);
    }
    return NULL;
}

/* One-time passwords from the admin page's JSON API, OTP_FETCHERS
 * keep-alive connections; not measured. */
typedef struct {
    bench_t *b;
    char (*pw)[PW_MAX];
    int n;
    volatile apr_uint32_t next;
    const char *req;
    int err_status;
    const char *err;
} otp_fetch_t;

static void *APR_THREAD_FUNC otp_main(apr_thread_t *thr, void *data)
{
    otp_fetch_t *f = data;
    conn_t c;

    (void)thr;
    memset(&c, 0, sizeof(c));
    for (;;) {
        apr_uint32_t i = apr_atomic_inc32(&f->next);
        const unsigned char *body;
        const char *v, *e;
        apr_size_t blen;
        int status;

        if (i >= (apr_uint32_t)f->n || f->err) {
            break;
        }
        if (http_exchange(&c, &f->b->admin, f->req, strlen(f->req), &status,
                          &body, &blen) != APR_SUCCESS) {
            f->err = "cannot reach the admin page";
            break;
        }
        v = status == 200 ? strstr((const char *)body, "\"password\": \"")
                          : NULL;
        if (v == NULL) {
            f->err_status = status;
            f->err = "the admin page gave no password";
            break;
        }
        v += 13;
        e = strchr(v, '"');
        if (e == NULL || e - v >= PW_MAX || e == v) {
            f->err = "unreadable password";
            break;
        }
        memcpy(f->pw[i], v, (apr_size_t)(e - v));
        f->pw[i][e - v] = 0;
    }
    conn_free(&c);
    return NULL;
}

static int fetch_passwords(bench_t *b, char (*pw)[PW_MAX], int n,
                           double *secs)
{
    otp_fetch_t f;
    apr_thread_t *th[OTP_FETCHERS];
    apr_status_t trv;
    apr_int64_t t0 = now_us();
    int i;

    memset(&f, 0, sizeof(f));
    f.b = b;
    f.pw = pw;
    f.n = n;
    f.req = apr_psprintf(gpool, "GET %s HTTP/1.1\r\nHost: %s\r\n"
                         "User-Agent: scep-bench\r\n"
                         "Accept: application/json\r\n%s\r\n",
                         target_uri(&b->admin, NULL, gpool),
                         b->admin.hostport, b->admin_headers);
    for (i = 0; i < OTP_FETCHERS; i++) {
        if (apr_thread_create(&th[i], NULL, otp_main, &f, gpool)
            != APR_SUCCESS) {
            return fail(EXIT_ERROR, "cannot start a thread");
        }
    }
    for (i = 0; i < OTP_FETCHERS; i++) {
        apr_thread_join(&trv, th[i]);
    }
    *secs = (double)(now_us() - t0) / 1e6;
    if (f.err) {
        return fail(EXIT_ERROR, "fetching one-time passwords: %s (HTTP %d)",
                    f.err, f.err_status);
    }
    return EXIT_OK;
}

/* Build @a n requests (passwords first when they are one-time). */
static int make_jobs(bench_t *b, job_t **pjobs, int n, apr_pool_t *p,
                     double *gen_s, double *otp_s)
{
    job_t *jobs = calloc((size_t)n, sizeof(*jobs));
    char (*pw)[PW_MAX] = NULL;
    gen_t g[16];
    apr_thread_t *th[16];
    apr_status_t trv;
    apr_int64_t t0;
    int i, rc, nth = o.threads < 1 ? 1 : (o.threads > 16 ? 16 : o.threads);

    *otp_s = 0;
    if (jobs == NULL) {
        return fail(EXIT_ERROR, "out of memory");
    }
    if (o.otp_url) {
        pw = calloc((size_t)n, sizeof(*pw));
        if (pw == NULL) {
            free(jobs);
            return fail(EXIT_ERROR, "out of memory");
        }
        if ((rc = fetch_passwords(b, pw, n, otp_s)) != EXIT_OK) {
            free(pw);
            free(jobs);
            return rc;
        }
    }
    t0 = now_us();
    for (i = 0; i < nth; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].b = b;
        g[i].jobs = jobs;
        g[i].pw = pw;
        g[i].from = n * i / nth;
        g[i].to = n * (i + 1) / nth;
        apr_pool_create(&g[i].p, p);    /* created here: pools are not
                                         * thread-safe */
    }
    for (i = 0; i < nth; i++) {
        if (apr_thread_create(&th[i], NULL, gen_main, &g[i], p)
            != APR_SUCCESS) {
            free(pw);
            free(jobs);
            return fail(EXIT_ERROR, "cannot start a thread");
        }
    }
    rc = EXIT_OK;
    for (i = 0; i < nth; i++) {
        apr_thread_join(&trv, th[i]);
        if (g[i].err && rc == EXIT_OK) {
            rc = fail(EXIT_ERROR, "building a request: %s", g[i].err);
        }
    }
    free(pw);
    if (rc != EXIT_OK) {
        free(jobs);
        return rc;
    }
    b->serial += (apr_uint32_t)n;
    *gen_s = (double)(now_us() - t0) / 1e6;
    *pjobs = jobs;
    return EXIT_OK;
}

typedef struct {
    int success, failure, pending, undecodable, mismatched;
    int verified, verify_failed;
    int fail_info[5];
    const char *first_problem;
    int reply_cipher_nid, reply_digest_nid;
} check_t;

static int has_cn(X509 *x, const char *cn)
{
    X509_NAME *n = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
    ASN1_STRING *s;

    if (i < 0) {
        return 0;
    }
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
    return s && (apr_size_t)ASN1_STRING_length(s) == strlen(cn)
           && memcmp(ASN1_STRING_get0_data(s), cn, strlen(cn)) == 0;
}

/* Complete check of one SUCCESS reply; NULL when good. */
static const char *verify_reply(bench_t *b, job_t *j, check_t *ck,
                                apr_pool_t *p)
{
    bkey_t *k = &b->keys[j->key];
    scep_msg_t *msg = NULL;
    STACK_OF(X509) *certs = NULL;
    X509_STORE_CTX *ctx;
    X509 *x;
    const char *why = NULL;
    int ok;

    if (scep_certrep_decode(&msg, &why, j->reply, j->reply_len, b->ca_certs,
                            k->cert, k->key, p) != APR_SUCCESS) {
        return apr_pstrcat(p, "decrypting the CertRep: ", why, NULL);
    }
    ck->reply_cipher_nid = msg->cipher_nid;
    ck->reply_digest_nid = msg->digest_nid;
    if (scep_certs_p7_decode(&certs, msg->content, msg->content_len, p)
        != APR_SUCCESS || sk_X509_num(certs) < 1) {
        return "SUCCESS without a certificate";
    }
    x = sk_X509_value(certs, 0);
    if (EVP_PKEY_eq(X509_get0_pubkey(x), k->key) != 1) {
        return "the issued certificate is not for the request's key";
    }
    if (!has_cn(x, j->cn)) {
        return "the issued certificate has another subject";
    }
    ctx = X509_STORE_CTX_new();
    ok = ctx && X509_STORE_CTX_init(ctx, b->trust, x, NULL) == 1
         && X509_verify_cert(ctx) == 1;
    if (!ok) {
        why = apr_psprintf(p, "the issued certificate does not verify "
                           "against the CA: %s", ctx
                           ? X509_verify_cert_error_string(
                                 X509_STORE_CTX_get_error(ctx))
                           : "out of memory");
    }
    X509_STORE_CTX_free(ctx);
    return why;
}

/* Every reply: signature, status, transactionID, nonce; a sample fully. */
static void check_replies(bench_t *b, job_t *jobs, int n, check_t *ck)
{
    apr_pool_t *p;
    int i, nsucc = 0, stride;

    memset(ck, 0, sizeof(*ck));
    apr_pool_create(&p, gpool);
    for (i = 0; i < n; i++) {
        nsucc += jobs[i].sent && jobs[i].http_status == 200;
    }
    stride = o.verify > 0 && nsucc > o.verify ? nsucc / o.verify : 1;
    nsucc = 0;
    for (i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        scep_msg_t *msg = NULL;
        const char *why = NULL;

        if (!j->sent || j->http_status != 200 || j->reply == NULL) {
            continue;
        }
        apr_pool_clear(p);
        scep_certrep_decode(&msg, &why, j->reply, j->reply_len, b->ca_certs,
                            NULL, NULL, p);
        if (msg == NULL || msg->pki_status < 0
            || msg->transaction_id == NULL || !msg->has_recipient_nonce) {
            ck->undecodable++;
            if (ck->first_problem == NULL) {
                ck->first_problem = apr_pstrdup(gpool, why ? why : "?");
            }
            continue;
        }
        if (strcmp(msg->transaction_id, j->tid) != 0
            || memcmp(msg->recipient_nonce, j->nonce, SCEP_NONCE_LEN) != 0) {
            ck->mismatched++;
            if (ck->first_problem == NULL) {
                ck->first_problem = "transactionID or recipientNonce is not "
                                    "the request's";
            }
            continue;
        }
        if (msg->pki_status == SCEP_STATUS_FAILURE) {
            ck->failure++;
            if (msg->fail_info >= 0 && msg->fail_info < 5) {
                ck->fail_info[msg->fail_info]++;
            }
            continue;
        }
        if (msg->pki_status == SCEP_STATUS_PENDING) {
            ck->pending++;
            continue;
        }
        ck->success++;
        if (o.verify > 0 && ck->verified + ck->verify_failed < o.verify
            && nsucc++ % stride == 0) {
            why = verify_reply(b, j, ck, p);
            if (why) {
                ck->verify_failed++;
                if (ck->first_problem == NULL) {
                    ck->first_problem = apr_pstrdup(gpool, why);
                }
            }
            else {
                ck->verified++;
            }
        }
    }
    apr_pool_destroy(p);
}

static void free_jobs(job_t *jobs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(jobs[i].reply);
    }
    free(jobs);
}

static const char *json_str(const char *s, apr_pool_t *p)
{
    char *out = apr_palloc(p, 6 * strlen(s) + 3), *w = out;

    *w++ = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *w++ = '\\';
            *w++ = (char)ch;
        }
        else if (ch < 0x20) {
            w += sprintf(w, "\\u%04x", ch);
        }
        else {
            *w++ = (char)ch;
        }
    }
    *w++ = '"';
    *w = 0;
    return out;
}

static const EVP_CIPHER *pick_cipher(const char *name, int *legacy)
{
    *legacy = 0;
    if (name == NULL || !strcasecmp(name, "aes128")) {
        return EVP_aes_128_cbc();
    }
    if (!strcasecmp(name, "aes256")) {
        return EVP_aes_256_cbc();
    }
    if (!strcasecmp(name, "des3")) {
        return EVP_des_ede3_cbc();
    }
    if (!strcasecmp(name, "des")) {
        *legacy = 1;
        return EVP_des_cbc();
    }
    return NULL;
}

static const EVP_MD *pick_digest(const char *name)
{
    if (name == NULL || !strcasecmp(name, "sha256")) {
        return EVP_sha256();
    }
    if (!strcasecmp(name, "sha1")) {
        return EVP_sha1();
    }
    if (!strcasecmp(name, "sha512")) {
        return EVP_sha512();
    }
    return NULL;
}

static apr_status_t free_store(void *data)
{
    X509_STORE_free(data);
    return APR_SUCCESS;
}

/* GetCACert: the CA (and RA) certificates, the recipient, the trust. */
static int setup_ca(bench_t *b)
{
    const unsigned char *body;
    apr_size_t blen;
    int status, i, idx = -1;
    X509 *rcpt;
    const char *uri = target_uri(&b->t, "operation=GetCACert&message=CA",
                                 gpool);

    if (http_get_once(&b->t, uri, NULL, &status, &body, &blen, gpool)
        != APR_SUCCESS || status != 200) {
        return fail(EXIT_ERROR, "GetCACert from %s failed (HTTP %d)", o.url,
                    status);
    }
    if (scep_certs_p7_decode(&b->ca_certs, body, blen, gpool)
        != APR_SUCCESS || sk_X509_num(b->ca_certs) < 1) {
        const unsigned char *q = body;
        X509 *x = d2i_X509(NULL, &q, (long)blen);
        if (x == NULL) {
            return fail(EXIT_ERROR, "GetCACert: no certificate in the reply");
        }
        b->ca_certs = scep_own_certs(gpool, sk_X509_new_null());
        sk_X509_push(b->ca_certs, x);
    }
    b->trust = X509_STORE_new();
    apr_pool_cleanup_register(gpool, b->trust, free_store,
                              apr_pool_cleanup_null);
    b->recipients = scep_own_certs(gpool, sk_X509_new_null());
    for (i = 0; i < sk_X509_num(b->ca_certs); i++) {
        X509 *x = sk_X509_value(b->ca_certs, i);
        if (X509_check_ca(x)) {
            X509_STORE_add_cert(b->trust, x);
        }
        if (idx < 0 && (X509_get_extension_flags(x) & EXFLAG_KUSAGE)
            && (X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT)) {
            idx = i;
        }
    }
    rcpt = sk_X509_value(b->ca_certs, idx < 0 ? 0 : idx);
    X509_up_ref(rcpt);
    sk_X509_push(b->recipients, rcpt);
    progress("GetCACert: %d certificates, encrypting to %s",
             sk_X509_num(b->ca_certs),
             scep_name_str(X509_get_subject_name(
                 sk_X509_value(b->recipients, 0)), gpool));
    return EXIT_OK;
}

static int cmd_enroll(void)
{
    bench_t b;
    OSSL_PROVIDER *legacy = NULL, *deflt = NULL;
    procs_t rss_before, rss_after;
    job_t *jobs;
    level_t lv;
    check_t ck;
    run_t run;
    double gen_s, otp_s, est, best = 0;
    long enrolled_between = 0;
    int rc, i, use_legacy, n, best_c = 0, first = 1, wc;
    apr_pool_t *lp;

    memset(&b, 0, sizeof(b));
    if (o.challenge == NULL && o.otp_url == NULL) {
        return fail(EXIT_USAGE, "enroll needs --challenge PW or --otp URL");
    }
    if ((b.cipher = pick_cipher(o.cipher, &use_legacy)) == NULL) {
        return fail(EXIT_USAGE, "--cipher: aes128 aes256 des3 des");
    }
    if ((b.digest = pick_digest(o.digest)) == NULL) {
        return fail(EXIT_USAGE, "--digest: sha1 sha256 sha512");
    }
    if (use_legacy) {
        deflt = OSSL_PROVIDER_load(NULL, "default");
        legacy = OSSL_PROVIDER_load(NULL, "legacy");
        if (deflt == NULL || legacy == NULL) {
            return fail(EXIT_ERROR, "DES needs OpenSSL's legacy provider");
        }
    }
    if (target_parse(&b.t, o.url, gpool) != APR_SUCCESS) {
        return fail(EXIT_USAGE, "not a usable http:// URL: %s", o.url);
    }
    b.op_uri = target_uri(&b.t, "operation=PKIOperation", gpool);
    if (o.otp_url) {
        unsigned char *enc;
        const char *auth = o.otp_auth ? o.otp_auth : "";
        if (target_parse(&b.admin, o.otp_url, gpool) != APR_SUCCESS) {
            return fail(EXIT_USAGE, "--otp: not a usable URL: %s", o.otp_url);
        }
        enc = apr_palloc(gpool, 4 * (strlen(auth) / 3 + 2));
        EVP_EncodeBlock(enc, (const unsigned char *)auth, (int)strlen(auth));
        b.admin_headers = o.otp_auth
            ? apr_psprintf(gpool, "Authorization: Basic %s\r\n", enc) : "";
    }
    {
        unsigned char r[6];
        RAND_bytes(r, sizeof(r));
        b.prefix = apr_psprintf(gpool, "%s-%s", o.label,
                                hexstr(r, sizeof(r), gpool));
    }
    if ((rc = setup_ca(&b)) != EXIT_OK) {
        return rc;
    }
    if ((rc = load_keys(&b.keys, o.nkeys, b.digest)) != EXIT_OK) {
        return rc;
    }

    printf("{\"label\": %s, \"url\": %s, \"cipher\": %s, \"digest\": %s, "
           "\"challenge\": %s, \"keys\": %d, \"key_bits\": %d, "
           "\"seconds_per_level\": %.1f, \"max_per_level\": %d,\n",
           json_str(o.label, gpool), json_str(o.url, gpool),
           json_str(EVP_CIPHER_get0_name(b.cipher), gpool),
           json_str(EVP_MD_get0_name(b.digest), gpool),
           o.otp_url ? "\"otp\"" : "\"static\"", o.nkeys, o.bits, o.seconds,
           o.max);

    /* warm-up at the highest concurrency: the server's threads, database
     * connections and caches are all in use before the memory is read and
     * the first level starts; it gives a first rate, too */
    apr_pool_create(&lp, gpool);
    wc = 1;
    for (i = 0; i < o.nlevels; i++) {
        wc = o.levels[i] > wc ? o.levels[i] : wc;
    }
    est = 0;
    if (o.warmup > 0) {
        if (o.warmup < 2 * wc) {
            o.warmup = 2 * wc;
        }
        if ((rc = make_jobs(&b, &jobs, o.warmup, lp, &gen_s, &otp_s))
            != EXIT_OK) {
            return rc;
        }
        memset(&run, 0, sizeof(run));
        run.t = &b.t;
        run.jobs = jobs;
        run.njobs = (apr_uint32_t)o.warmup;
        run.keep_replies = 1;
        run_level(&run, wc, o.seconds, &lv);
        check_replies(&b, jobs, o.warmup, &ck);
        est = lv.seconds > 0 ? ck.success / lv.seconds : 0;
        progress("warm-up: %u requests at c%d, %d SUCCESS, %.0f/s%s%s",
                 lv.sent, wc, ck.success, est,
                 ck.first_problem ? "; " : "",
                 ck.first_problem ? ck.first_problem : "");
        printf("\"warmup\": {\"concurrency\": %d, \"sent\": %u, "
               "\"success\": %d, \"per_s\": %.1f},\n", wc, lv.sent,
               ck.success, est);
        free_jobs(jobs, o.warmup);
        apr_pool_clear(lp);
        if (ck.success == 0) {
            printf("\"error\": %s}\n", json_str(ck.first_problem
                ? ck.first_problem : "no enrollment succeeded", gpool));
            return EXIT_ERROR;
        }
    }
    server_procs(&rss_before);

    printf("\"levels\": [\n");
    for (i = 0; i < o.nlevels; i++) {
        int c = o.levels[i];
        double rate, f = est > 0 ? est : 200;

        /* the best rate so far and room above it: a short warm-up
         * underestimates, and a level that runs out ends early */
        n = (int)(f * o.seconds * 1.6) + 8 * c + 16;
        if (n > o.max) {
            n = o.max;
        }
        if ((rc = make_jobs(&b, &jobs, n, lp, &gen_s, &otp_s)) != EXIT_OK) {
            printf("]}\n");
            return rc;
        }
        memset(&run, 0, sizeof(run));
        run.t = &b.t;
        run.jobs = jobs;
        run.njobs = (apr_uint32_t)n;
        run.keep_replies = 1;
        run_level(&run, c, o.seconds, &lv);
        check_replies(&b, jobs, n, &ck);
        enrolled_between += ck.success;
        rate = lv.seconds > 0 ? ck.success / lv.seconds : 0;
        if (rate > est) {
            est = rate;
        }
        if (rate > best) {
            best = rate;
            best_c = c;
        }
        progress("c%-3d %6.1f enrollments/s  p50 %.1f ms  p99 %.1f ms  "
                 "(%u sent, %d SUCCESS, %d FAILURE, %d PENDING, %d other; "
                 "%d/%d verified; built in %.1f s%s)%s%s", c, rate,
                 lv.p50_ms, lv.p99_ms, lv.sent, ck.success, ck.failure,
                 ck.pending, lv.http_other + lv.transport_errors
                 + ck.undecodable + ck.mismatched, ck.verified,
                 ck.verified + ck.verify_failed, gen_s,
                 lv.exhausted ? ", ran out of requests" : "",
                 ck.first_problem ? ": " : "",
                 ck.first_problem ? ck.first_problem : "");
        printf("%s  {", first ? "" : ",\n");
        first = 0;
        print_level_common(&lv);
        if (o.rss_ppid > 0 || o.server_pid > 0) {
            printf(", \"server_cpu_ms_per_enroll\": %.2f",
                   ck.success > 0 ? lv.server_cpu_s * 1000 / ck.success : 0);
        }
        printf(", \"enroll_per_s\": %.1f, \"success\": %d, \"failure\": %d, "
               "\"pending\": %d, \"undecodable\": %d, \"mismatched\": %d, "
               "\"fail_info\": [%d, %d, %d, %d, %d], \"verified\": %d, "
               "\"verify_failed\": %d, \"build_s\": %.2f, "
               "\"otp_fetch_s\": %.2f, \"otp_fetch_per_s\": %.1f%s%s",
               rate, ck.success, ck.failure, ck.pending, ck.undecodable,
               ck.mismatched, ck.fail_info[0], ck.fail_info[1],
               ck.fail_info[2], ck.fail_info[3], ck.fail_info[4],
               ck.verified, ck.verify_failed, gen_s, otp_s,
               otp_s > 0 ? n / otp_s : 0,
               ck.first_problem ? ", \"problem\": " : "",
               ck.first_problem ? json_str(ck.first_problem, gpool) : "");
        if (ck.reply_cipher_nid) {
            printf(", \"reply_cipher\": %s, \"reply_digest\": %s",
                   json_str(OBJ_nid2sn(ck.reply_cipher_nid), gpool),
                   json_str(OBJ_nid2sn(ck.reply_digest_nid), gpool));
        }
        printf("}");
        free_jobs(jobs, n);
        apr_pool_clear(lp);
    }
    printf("\n],\n");
    server_procs(&rss_after);
    if (o.rss_ppid > 0 || o.server_pid > 0) {
        printf("\"rss\": {\"processes_before\": %d, "
               "\"processes_after\": %d, \"kb_before\": %ld, "
               "\"kb_after\": %ld, \"enrollments_between\": %ld, "
               "\"per_process_kb_before\": {%s}, "
               "\"per_process_kb_after\": {%s}},\n", rss_before.n,
               rss_after.n, rss_before.kb, rss_after.kb, enrolled_between,
               rss_before.list, rss_after.list);
    }
    printf("\"best_concurrency\": %d, \"best_enroll_per_s\": %.1f}\n",
           best_c, best);
    apr_pool_destroy(lp);
    if (legacy) {
        OSSL_PROVIDER_unload(legacy);
    }
    if (deflt) {
        OSSL_PROVIDER_unload(deflt);
    }
    return EXIT_OK;
}

/* ---- get ---------------------------------------------------------------- */

static int cmd_get(void)
{
    target_t t;
    const unsigned char *expect;
    apr_size_t elen;
    run_t run;
    level_t lv;
    job_t *jobs;
    double best = 0;
    int status, i, best_c = 0, n = o.max;
    const char *uri, *req;

    if (target_parse(&t, o.url, gpool) != APR_SUCCESS) {
        return fail(EXIT_USAGE, "not a usable http:// URL: %s", o.url);
    }
    uri = target_uri(&t, o.query, gpool);
    if (http_get_once(&t, uri, NULL, &status, &expect, &elen, gpool)
        != APR_SUCCESS || status != 200 || elen == 0) {
        return fail(EXIT_ERROR, "GET %s failed (HTTP %d)", uri, status);
    }
    req = apr_psprintf(gpool, "GET %s HTTP/1.1\r\nHost: %s\r\n"
                       "User-Agent: scep-bench\r\n\r\n", uri, t.hostport);
    jobs = calloc((size_t)n, sizeof(*jobs));
    if (jobs == NULL) {
        return fail(EXIT_ERROR, "out of memory");
    }
    printf("{\"label\": %s, \"url\": %s, \"bytes\": %" APR_SIZE_T_FMT ", "
           "\"seconds_per_level\": %.1f, \"max_per_level\": %d,\n"
           "\"levels\": [\n", json_str(o.label, gpool),
           json_str(apr_pstrcat(gpool, "http://", t.hostport, uri, NULL),
                    gpool), elen, o.seconds, o.max);
    for (i = 0; i < o.nlevels; i++) {
        int c = o.levels[i], k, same = 0;
        double rate;

        memset(jobs, 0, sizeof(*jobs) * (size_t)n);
        memset(&run, 0, sizeof(run));
        run.t = &t;
        run.jobs = jobs;
        run.njobs = (apr_uint32_t)n;
        run.req = req;
        run.req_len = strlen(req);
        run.expect = expect;
        run.expect_len = elen;
        run_level(&run, c, o.seconds, &lv);
        for (k = 0; k < n; k++) {
            same += jobs[k].sent && jobs[k].http_status == 200
                    && jobs[k].same;
        }
        rate = lv.seconds > 0 ? same / lv.seconds : 0;
        if (rate > best) {
            best = rate;
            best_c = c;
        }
        progress("%s c%-3d %8.0f/s  p50 %.2f ms  p99 %.2f ms  (%u sent, %d "
                 "good)%s", o.label, c, rate, lv.p50_ms, lv.p99_ms, lv.sent,
                 same, lv.exhausted ? ", ran out of requests" : "");
        printf("%s  {", i ? ",\n" : "");
        print_level_common(&lv);
        printf(", \"per_s\": %.1f, \"good\": %d}", rate, same);
    }
    printf("\n],\n\"best_concurrency\": %d, \"best_per_s\": %.1f}\n",
           best_c, best);
    free(jobs);
    return EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: scep-bench rsa [--threads N] [--seconds S] [--cache DIR]\n"
"       scep-bench enroll URL (--challenge PW | --otp ADMIN_URL\n"
"                  [--otp-auth USER:PASSWORD]) [options]\n"
"       scep-bench get URL [--query Q] [options]\n"
"options:\n"
"  --concurrency LIST   levels, e.g. 1,4,16,64 (default)\n"
"  --seconds S          per level (default 5; rsa: in all, default 3)\n"
"  --max N              requests per level at most (default 50000;\n"
"                       get: 500000)\n"
"  --warmup N           unmeasured requests first, at the highest\n"
"                       concurrency (enroll, default 256)\n"
"  --cache DIR          key pool cache (default bench/cache)\n"
"  --keys N             keys in the pool (default 64)\n"
"  --bits N             RSA key size (default 2048)\n"
"  --threads N          rsa: signing threads; enroll: request builders\n"
"                       (default 2)\n"
"  --cipher aes128|aes256|des3|des   --digest sha256|sha1|sha512\n"
"  --verify N           replies fully checked per level (default 20)\n"
"  --label NAME         in the output and the requested CNs\n"
"  --rss-ppid PID       the server is PID's children (httpd): report their\n"
"                       memory before and after, and their CPU time\n"
"  --server-pid PID     the server is process PID (same reports)\n"
"  --query Q            get: the query string (e.g.\n"
"                       operation=GetCACert&message=CA)\n"
"Output: one JSON object on stdout.\n");
}

enum {
    OPT_CONC = 256, OPT_SECONDS, OPT_MAX, OPT_WARMUP, OPT_CACHE, OPT_KEYS,
    OPT_BITS, OPT_THREADS, OPT_CHALLENGE, OPT_OTP, OPT_OTP_AUTH, OPT_CIPHER,
    OPT_DIGEST, OPT_VERIFY, OPT_LABEL, OPT_RSS, OPT_SERVER_PID, OPT_QUERY,
    OPT_HELP
};

static const struct option long_opts[] = {
    { "concurrency", required_argument, NULL, OPT_CONC },
    { "seconds", required_argument, NULL, OPT_SECONDS },
    { "max", required_argument, NULL, OPT_MAX },
    { "warmup", required_argument, NULL, OPT_WARMUP },
    { "cache", required_argument, NULL, OPT_CACHE },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "bits", required_argument, NULL, OPT_BITS },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "challenge", required_argument, NULL, OPT_CHALLENGE },
    { "otp", required_argument, NULL, OPT_OTP },
    { "otp-auth", required_argument, NULL, OPT_OTP_AUTH },
    { "cipher", required_argument, NULL, OPT_CIPHER },
    { "digest", required_argument, NULL, OPT_DIGEST },
    { "verify", required_argument, NULL, OPT_VERIFY },
    { "label", required_argument, NULL, OPT_LABEL },
    { "rss-ppid", required_argument, NULL, OPT_RSS },
    { "server-pid", required_argument, NULL, OPT_SERVER_PID },
    { "query", required_argument, NULL, OPT_QUERY },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

static int num_arg(const char *name, const char *arg, long lo, long hi,
                   long *v)
{
    char *end;

    *v = strtol(arg, &end, 10);
    if (*end || end == arg || *v < lo || *v > hi) {
        return fail(EXIT_USAGE, "--%s %s: a number from %ld to %ld", name,
                    arg, lo, hi);
    }
    return EXIT_OK;
}

static int parse_levels(const char *arg)
{
    char *s = apr_pstrdup(gpool, arg), *tok, *last;
    long v;

    o.nlevels = 0;
    for (tok = apr_strtok(s, ",", &last); tok;
         tok = apr_strtok(NULL, ",", &last)) {
        if (o.nlevels == MAX_LEVELS
            || num_arg("concurrency", tok, 1, MAX_CONCURRENCY, &v)
               != EXIT_OK) {
            return fail(EXIT_USAGE, "--concurrency: up to %d numbers from 1 "
                        "to %d", MAX_LEVELS, MAX_CONCURRENCY);
        }
        o.levels[o.nlevels++] = (int)v;
    }
    return o.nlevels ? EXIT_OK
                     : fail(EXIT_USAGE, "--concurrency: a list like 1,4,16");
}

static int parse_args(int argc, char **argv)
{
    int c, rc = EXIT_OK, seconds_set = 0, max_set = 0;
    long v;

    o.cache = "bench/cache";
    o.nkeys = 64;
    o.bits = 2048;
    o.threads = 2;
    o.seconds = 5;
    o.max = 50000;
    o.warmup = 256;
    o.verify = 20;
    o.label = "bench";
    o.query = "operation=GetCACert&message=CA";
    if ((rc = parse_levels("1,4,16,64")) != EXIT_OK) {
        return rc;
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    o.cmd = argv[1];
    if (!strcmp(o.cmd, "--help") || !strcmp(o.cmd, "-h")) {
        usage(stdout);
        return -1;
    }
    optind = 2;
    while (rc == EXIT_OK
           && (c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONC:
            rc = parse_levels(optarg);
            break;
        case OPT_SECONDS: {
            char *end;
            o.seconds = strtod(optarg, &end);
            if (*end || o.seconds <= 0 || o.seconds > 600) {
                rc = fail(EXIT_USAGE, "--seconds: more than 0, at most 600");
            }
            seconds_set = 1;
            break;
        }
        case OPT_MAX:
            rc = num_arg("max", optarg, 1, 5000000, &v);
            o.max = (int)v;
            max_set = 1;
            break;
        case OPT_WARMUP:
            rc = num_arg("warmup", optarg, 0, 100000, &v);
            o.warmup = (int)v;
            break;
        case OPT_CACHE:     o.cache = optarg; break;
        case OPT_KEYS:
            rc = num_arg("keys", optarg, 1, MAX_KEYS, &v);
            o.nkeys = (int)v;
            break;
        case OPT_BITS:
            rc = num_arg("bits", optarg, 1024, 8192, &v);
            o.bits = (int)v;
            break;
        case OPT_THREADS:
            rc = num_arg("threads", optarg, 1, 64, &v);
            o.threads = (int)v;
            break;
        case OPT_CHALLENGE: o.challenge = optarg; break;
        case OPT_OTP:       o.otp_url = optarg; break;
        case OPT_OTP_AUTH:  o.otp_auth = optarg; break;
        case OPT_CIPHER:    o.cipher = optarg; break;
        case OPT_DIGEST:    o.digest = optarg; break;
        case OPT_VERIFY:
            rc = num_arg("verify", optarg, 0, 1000000, &v);
            o.verify = (int)v;
            break;
        case OPT_LABEL:     o.label = optarg; break;
        case OPT_RSS:
            rc = num_arg("rss-ppid", optarg, 1, 1L << 30, &v);
            o.rss_ppid = (int)v;
            break;
        case OPT_SERVER_PID:
            rc = num_arg("server-pid", optarg, 1, 1L << 30, &v);
            o.server_pid = (int)v;
            break;
        case OPT_QUERY:     o.query = optarg; break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (rc != EXIT_OK) {
        return rc;
    }
    if (strcmp(o.cmd, "rsa") && strcmp(o.cmd, "enroll")
        && strcmp(o.cmd, "get")) {
        usage(stderr);
        return fail(EXIT_USAGE, "unknown command '%s'", o.cmd);
    }
    if (!strcmp(o.cmd, "rsa")) {
        if (!seconds_set) {
            o.seconds = 3;
        }
        if (optind != argc) {
            return fail(EXIT_USAGE, "rsa takes no URL");
        }
        return EXIT_OK;
    }
    if (!strcmp(o.cmd, "get") && !max_set) {
        o.max = 500000;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return fail(EXIT_USAGE, "%s: want exactly one URL", o.cmd);
    }
    o.url = argv[optind];
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    int rc;

    apr_app_initialize(&argc, (const char *const **)&argv, NULL);
    apr_pool_create(&gpool, NULL);
    apr_atomic_init(gpool);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    rc = parse_args(argc, argv);
    if (rc == EXIT_OK) {
        if (!strcmp(o.cmd, "rsa")) {
            rc = cmd_rsa();
        }
        else if (!strcmp(o.cmd, "enroll")) {
            rc = cmd_enroll();
        }
        else if (!strcmp(o.cmd, "get")) {
            rc = cmd_get();
        }
        else {
            usage(stderr);
            rc = fail(EXIT_USAGE, "unknown command '%s'", o.cmd);
        }
    }
    else if (rc < 0) {
        rc = EXIT_OK;
    }
    fflush(stdout);
    ERR_clear_error();
    apr_pool_destroy(gpool);
    apr_terminate();
    return rc;
}
