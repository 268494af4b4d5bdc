/* Licensed under the Apache License, Version 2.0.
 *
 * The "command" CA provider: an external program issues the certificate.
 * CORE: APR and OpenSSL only (plus the POSIX calls APR has no word for:
 * process groups, waitid).
 *
 *   SCEPCAProvider command /path/to/program [argument ...] [timeout=SECONDS]
 *
 * The program runs without a shell (execve of the configured argv, the
 * arguments exactly as written), in a clean environment (PATH=/usr/bin:/bin
 * plus the SCEP_* facts of the request), in its own process group, working
 * directory "/", the CSR as PEM on stdin.  Its exit status decides:
 *
 *   0  ISSUED: stdout holds the certificate(s) as PEM, the issued one first
 *   2  REJECTED: the first line of stderr is the reason
 *   3  PENDING: the first line of stdout is the reference; poll runs the
 *      program again with SCEP_OPERATION=poll and SCEP_REFERENCE=reference
 *   anything else, a signal, a timeout, output that is not a certificate of
 *      the CSR's key issued by the endpoint's CA: ERROR
 *
 * docs/providers.md has the whole contract and an example program.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_poll.h>
#include <apr_portable.h>
#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_tables.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca_local.h"
#include "scep_pki.h"

#define CMD_DEFAULT_TIMEOUT   30          /* seconds */
#define CMD_MAX_TIMEOUT       3600
#define CMD_MAX_STDOUT        (1024 * 1024)
#define CMD_MAX_STDERR        (8 * 1024)  /* kept; the rest is read, dropped */
#define CMD_MAX_REFERENCE     1024
#define CMD_MAX_REASON        300
#define CMD_KILL_GRACE        apr_time_from_msec(1000)

#define CMD_EXIT_ISSUED   0
#define CMD_EXIT_REJECTED 2
#define CMD_EXIT_PENDING  3

typedef struct {
    const char *program;          /* absolute path (argv[0]) */
    const char **argv;            /* NULL-terminated, argv[0] = program */
    apr_interval_time_t timeout;
    apr_thread_mutex_t *mutex;    /* guards issuers (init may run late) */
    apr_array_header_t *issuers;  /* X509 *: the CA chains given to init */
    apr_pool_t *pool;             /* configuration pool */
} ca_command_t;

/* One run of the program. */
typedef struct {
    apr_pool_t *pool;             /* subpool: pipes, process, buffers */
    apr_proc_t proc;
    int exited;                   /* reaped */
    int why_signal;               /* ... by a signal */
    int code;                     /* exit status or signal number */
    int timed_out;
    int too_much;                 /* stdout over CMD_MAX_STDOUT */
    const char *run_error;        /* could not start, or I/O failure */
    char *out;                    /* stdout, NUL-terminated */
    apr_size_t out_len;
    char *err;                    /* the first CMD_MAX_STDERR of stderr */
    apr_size_t err_len;
} cmd_run_t;

/* ---- configuration ------------------------------------------------------ */

static const char *command_create(void **instance, apr_pool_t *p,
                                  int argc, const char *const *argv)
{
    ca_command_t *cmd;
    int i, n = 0;

    if (argc < 1 || argv[0] == NULL || !*argv[0]) {
        return "the command CA provider needs the program to run: "
               "SCEPCAProvider command /path/to/program [argument ...] "
               "[timeout=SECONDS]";
    }
    cmd = apr_pcalloc(p, sizeof(*cmd));
    cmd->pool = p;
    cmd->program = argv[0];
    cmd->timeout = apr_time_from_sec(CMD_DEFAULT_TIMEOUT);
    cmd->argv = apr_pcalloc(p, sizeof(char *) * (argc + 1));
    cmd->argv[n++] = cmd->program;
    for (i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "timeout=", 8)) {
            char *end;
            long v = strtol(argv[i] + 8, &end, 10);
            if (end == argv[i] + 8 || *end || v < 1 || v > CMD_MAX_TIMEOUT) {
                return apr_psprintf(p, "%s: a number of seconds from 1 to %d",
                                    argv[i], CMD_MAX_TIMEOUT);
            }
            cmd->timeout = apr_time_from_sec(v);
        }
        else {
            cmd->argv[n++] = argv[i];
        }
    }
    cmd->argv[n] = NULL;
    cmd->issuers = apr_array_make(p, 4, sizeof(X509 *));
#if APR_HAS_THREADS
    if (apr_thread_mutex_create(&cmd->mutex, APR_THREAD_MUTEX_DEFAULT, p)
        != APR_SUCCESS) {
        return "cannot create a mutex";
    }
#endif
    *instance = cmd;
    return NULL;
}

static const char *command_init(void *instance, apr_pool_t *p,
                                STACK_OF(X509) *ca_chain)
{
    ca_command_t *cmd = instance;
    apr_finfo_t fi;
    apr_status_t rv;
    int i, j;

    if (cmd->program[0] != '/') {
        return apr_psprintf(p, "program '%s' not found (give an absolute "
                            "path, or one relative to ServerRoot that "
                            "exists)", cmd->program);
    }
    rv = apr_stat(&fi, cmd->program, APR_FINFO_TYPE | APR_FINFO_PROT, p);
    if (rv != APR_SUCCESS) {
        char buf[120];
        return apr_psprintf(p, "program %s: %s", cmd->program,
                            apr_strerror(rv, buf, sizeof(buf)));
    }
    if (fi.filetype != APR_REG) {
        return apr_psprintf(p, "program %s is not a regular file",
                            cmd->program);
    }
    if (!(fi.protection & (APR_UEXECUTE | APR_GEXECUTE | APR_WEXECUTE))) {
        return apr_psprintf(p, "program %s is not executable (chmod +x)",
                            cmd->program);
    }
    /* Remember the CA certificates the issued ones must come from.  The
     * same instance may serve sections with different chains; init of a
     * merged section can come at request time, hence the mutex. */
#if APR_HAS_THREADS
    apr_thread_mutex_lock(cmd->mutex);
#endif
    for (i = 0; ca_chain && i < sk_X509_num(ca_chain); i++) {
        X509 *ca = sk_X509_value(ca_chain, i);
        int seen = 0;
        for (j = 0; j < cmd->issuers->nelts && !seen; j++) {
            seen = X509_cmp(APR_ARRAY_IDX(cmd->issuers, j, X509 *), ca) == 0;
        }
        if (!seen) {
            X509_up_ref(ca);
            scep_own_x509(cmd->pool, ca);
            APR_ARRAY_PUSH(cmd->issuers, X509 *) = ca;
        }
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(cmd->mutex);
#endif
    return NULL;
}

/* ---- the facts of the request ------------------------------------------- */

/* A value fit for the environment and a log line: control characters
 * become '?'. */
static char *clean(const char *s, apr_pool_t *p)
{
    char *o = apr_pstrdup(p, s ? s : ""), *c;

    for (c = o; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = '?';
        }
    }
    return o;
}

/* SAN values: ASCII only, ',' and '\' escaped with '\'. */
static void san_append(apr_array_header_t *out, const char *type,
                       const unsigned char *v, int len, apr_pool_t *p)
{
    char *buf = apr_palloc(p, strlen(type) + 2 + 2 * (apr_size_t)len), *o;
    int i;

    o = buf + strlen(type);
    memcpy(buf, type, strlen(type));
    *o++ = ':';
    for (i = 0; i < len; i++) {
        unsigned char c = v[i];
        if (c == ',' || c == '\\') {
            *o++ = '\\';
        }
        *o++ = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    *o = '\0';
    APR_ARRAY_PUSH(out, const char *) = buf;
}

static const char *csr_sans(X509_REQ *csr, apr_pool_t *p)
{
    STACK_OF(X509_EXTENSION) *exts = csr ? X509_REQ_get_extensions(csr) : NULL;
    GENERAL_NAMES *gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name,
                                                NULL, NULL) : NULL;
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    int i;

    for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *s;
        char ip[64];

        switch (g->type) {
        case GEN_DNS:
            s = g->d.dNSName;
            san_append(out, "dns", ASN1_STRING_get0_data(s),
                       ASN1_STRING_length(s), p);
            break;
        case GEN_EMAIL:
            s = g->d.rfc822Name;
            san_append(out, "email", ASN1_STRING_get0_data(s),
                       ASN1_STRING_length(s), p);
            break;
        case GEN_URI:
            s = g->d.uniformResourceIdentifier;
            san_append(out, "uri", ASN1_STRING_get0_data(s),
                       ASN1_STRING_length(s), p);
            break;
        case GEN_IPADD:
            s = g->d.iPAddress;
            if ((ASN1_STRING_length(s) == 4
                 && inet_ntop(AF_INET, ASN1_STRING_get0_data(s), ip,
                              sizeof(ip)))
                || (ASN1_STRING_length(s) == 16
                    && inet_ntop(AF_INET6, ASN1_STRING_get0_data(s), ip,
                                 sizeof(ip)))) {
                san_append(out, "ip", (const unsigned char *)ip,
                           (int)strlen(ip), p);
            }
            break;
        default:
            break;   /* otherName, directoryName...: not passed on */
        }
    }
    GENERAL_NAMES_free(gens);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return apr_array_pstrcat(p, out, ',');
}

static const char *ku_names(unsigned int ku, apr_pool_t *p)
{
    static const struct { unsigned int bit; const char *name; } kus[] = {
        { KU_DIGITAL_SIGNATURE, "digitalSignature" },
        { KU_NON_REPUDIATION, "nonRepudiation" },
        { KU_KEY_ENCIPHERMENT, "keyEncipherment" },
        { KU_DATA_ENCIPHERMENT, "dataEncipherment" },
        { KU_KEY_AGREEMENT, "keyAgreement" },
        { KU_KEY_CERT_SIGN, "keyCertSign" },
        { KU_CRL_SIGN, "cRLSign" },
        { KU_ENCIPHER_ONLY, "encipherOnly" },
        { KU_DECIPHER_ONLY, "decipherOnly" }
    };
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    apr_size_t i;

    for (i = 0; i < sizeof(kus) / sizeof(kus[0]); i++) {
        if (ku & kus[i].bit) {
            APR_ARRAY_PUSH(out, const char *) = kus[i].name;
        }
    }
    return apr_array_pstrcat(p, out, ',');
}

static const char *eku_oids(const char *const *eku, apr_pool_t *p)
{
    apr_array_header_t *out = apr_array_make(p, 4, sizeof(const char *));
    int i;

    for (i = 0; eku[i]; i++) {
        ASN1_OBJECT *o = OBJ_txt2obj(eku[i], 0);
        char buf[128];
        if (o && OBJ_obj2txt(buf, sizeof(buf), o, 1) > 0) {
            APR_ARRAY_PUSH(out, const char *) = apr_pstrdup(p, buf);
        }
        else {
            APR_ARRAY_PUSH(out, const char *) = clean(eku[i], p);
        }
        ASN1_OBJECT_free(o);
    }
    ERR_clear_error();
    return apr_array_pstrcat(p, out, ',');
}

static void env_add(apr_array_header_t *env, const char *name,
                    const char *value, apr_pool_t *p)
{
    APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, name, "=",
                                                    clean(value, p), NULL);
}

static const char *const *make_env(const scep_ca_request_t *req,
                                   const char *reference, apr_pool_t *p)
{
    apr_array_header_t *env = apr_array_make(p, 16, sizeof(const char *));

    APR_ARRAY_PUSH(env, const char *) = "PATH=/usr/bin:/bin";
    env_add(env, "SCEP_OPERATION", reference ? "poll" : "enroll", p);
    if (reference) {
        env_add(env, "SCEP_REFERENCE", reference, p);
    }
    env_add(env, "SCEP_PROFILE", req->profile, p);
    env_add(env, "SCEP_TRANSACTION_ID", req->transaction_id, p);
    env_add(env, "SCEP_SUBJECT", req->csr ? scep_name_str(
                X509_REQ_get_subject_name(req->csr), p) : "", p);
    env_add(env, "SCEP_SANS", csr_sans(req->csr, p), p);
    env_add(env, "SCEP_REQUESTER", req->requester, p);
    if (req->validity_days > 0) {
        env_add(env, "SCEP_VALIDITY_DAYS",
                apr_itoa(p, req->validity_days), p);
    }
    if (!reference) {
        /* what the profile asks the certificate to carry */
        env_add(env, "SCEP_KEY_USAGE", ku_names(req->key_usage, p), p);
        env_add(env, "SCEP_EXT_KEY_USAGE",
                req->ext_key_usage ? eku_oids(req->ext_key_usage, p) : "", p);
        env_add(env, "SCEP_SUBJECT_CN_ONLY", req->subject_cn_only ? "1" : "0",
                p);
        env_add(env, "SCEP_COPY_SAN", req->copy_san ? "1" : "0", p);
        env_add(env, "SCEP_CRL_URL", req->crl_url, p);
    }
    APR_ARRAY_PUSH(env, const char *) = NULL;
    return (const char *const *)env->elts;
}

/* ---- running the program ------------------------------------------------ */

/* Has the child exited?  Looks without reaping it: a zombie keeps its
 * process group alive, so that the group can still be killed safely. */
static int child_gone(cmd_run_t *run)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, run->proc.pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return errno == ECHILD;
    }
    return si.si_pid == run->proc.pid;
}

static void child_reap(cmd_run_t *run)
{
    apr_exit_why_e why;
    int code = 0;

    if (run->exited) {
        return;
    }
    if (apr_proc_wait(&run->proc, &code, &why, APR_WAIT) == APR_CHILD_DONE) {
        run->why_signal = APR_PROC_CHECK_SIGNALED(why);
        run->code = code;
    }
    else {
        run->why_signal = 1;
        run->code = 0;
    }
    run->exited = 1;
}

/* SIGTERM to the group, a second of grace, SIGKILL, reap. */
static void child_kill(cmd_run_t *run)
{
    apr_time_t until = apr_time_now() + CMD_KILL_GRACE;

    if (run->exited || run->proc.pid <= 0) {
        return;   /* never kill(0): that is httpd's own group */
    }
    kill(-run->proc.pid, SIGTERM);   /* its group: spawn_program */
    apr_proc_kill(&run->proc, SIGTERM);
    while (!child_gone(run) && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(10));
    }
    /* the leader is a zombie or still running: its group id is still its
     * own, whatever stayed behind in the group goes too */
    kill(-run->proc.pid, SIGKILL);
    apr_proc_kill(&run->proc, SIGKILL);
    child_reap(run);
}

/* Read what is there; 1 at end of file. */
static int drain(apr_file_t *f, cmd_run_t *run, int is_out)
{
    char buf[8192];

    for (;;) {
        apr_size_t n = sizeof(buf);
        apr_status_t rv = apr_file_read(f, buf, &n);

        if (n > 0) {
            if (is_out) {
                if (run->out_len + n > CMD_MAX_STDOUT) {
                    run->too_much = 1;
                    return 1;
                }
                memcpy(run->out + run->out_len, buf, n);
                run->out_len += n;
            }
            else if (run->err_len < CMD_MAX_STDERR) {
                apr_size_t k = CMD_MAX_STDERR - run->err_len;
                k = n < k ? n : k;
                memcpy(run->err + run->err_len, buf, k);
                run->err_len += k;
            }
        }
        if (rv == APR_EOF) {
            return 1;
        }
        if (APR_STATUS_IS_EAGAIN(rv)) {
            return 0;
        }
        if (rv != APR_SUCCESS) {
            return 1;   /* a broken pipe is an end too */
        }
    }
}

/* A pipe whose two descriptors are close-on-exec from their creation, so
 * that no other thread's program inherits them (it would hold our stdin
 * open, or a stdout we wait to end).  @a ours is the end this process
 * keeps, non-blocking; the other end is for the child, as a descriptor. */
static apr_status_t cloexec_pipe(apr_file_t **ours, int *theirs,
                                 int ours_reads, apr_pool_t *p)
{
    int fds[2];
    apr_os_file_t mine;
    apr_status_t rv;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        return errno;
    }
    mine = fds[ours_reads ? 0 : 1];
    *theirs = fds[ours_reads ? 1 : 0];
    if ((rv = apr_os_pipe_put_ex(ours, &mine, 1, p)) != APR_SUCCESS
        || (rv = apr_file_pipe_timeout_set(*ours, 0)) != APR_SUCCESS) {
        close(fds[0]);
        close(fds[1]);
        return rv;
    }
    return APR_SUCCESS;
}

/* Start the program in a process group of its own, made before it execs
 * (posix_spawn, POSIX_SPAWN_SETPGROUP), so that a timeout kills whatever
 * it started as well: the parent calling setpgid() after fork lost the
 * race to exec now and then, and a timed-out program's children then
 * outlived it.  Its stdin, stdout and stderr are pipes and it has no other
 * descriptor (closefrom 3: httpd's sockets and files stay with httpd,
 * whether or not they are close-on-exec); it starts in "/",
 * with no signal blocked and SIGPIPE and SIGCHLD at their defaults (a
 * worker thread of httpd blocks some signals and ignores SIGPIPE, and
 * both would be inherited across exec). */
static apr_status_t spawn_program(ca_command_t *cmd, const char *const *env,
                                  cmd_run_t *run)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t sa;
    sigset_t none, dflt;
    pid_t pid;
    int child[3] = { -1, -1, -1 }, i, rc;
    apr_status_t rv;

    if ((rv = cloexec_pipe(&run->proc.in, &child[0], 0, run->pool))
        != APR_SUCCESS
        || (rv = cloexec_pipe(&run->proc.out, &child[1], 1, run->pool))
           != APR_SUCCESS
        || (rv = cloexec_pipe(&run->proc.err, &child[2], 1, run->pool))
           != APR_SUCCESS) {
        for (i = 0; i < 3; i++) {
            if (child[i] >= 0) {
                close(child[i]);
            }
        }
        return rv;
    }
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGCHLD);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&sa);
    if ((rc = posix_spawn_file_actions_adddup2(&fa, child[0], 0)) == 0
        && (rc = posix_spawn_file_actions_adddup2(&fa, child[1], 1)) == 0
        && (rc = posix_spawn_file_actions_adddup2(&fa, child[2], 2)) == 0
        && (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0
        && (rc = posix_spawn_file_actions_addchdir_np(&fa, "/")) == 0
        && (rc = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP
                                               | POSIX_SPAWN_SETSIGMASK
                                               | POSIX_SPAWN_SETSIGDEF)) == 0
        && (rc = posix_spawnattr_setpgroup(&sa, 0)) == 0
        && (rc = posix_spawnattr_setsigmask(&sa, &none)) == 0
        && (rc = posix_spawnattr_setsigdefault(&sa, &dflt)) == 0) {
        rc = posix_spawn(&pid, cmd->program, &fa, &sa,
                         (char *const *)cmd->argv, (char *const *)env);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&sa);
    for (i = 0; i < 3; i++) {
        close(child[i]);
    }
    if (rc != 0) {
        return rc;
    }
    run->proc.pid = pid;
    return APR_SUCCESS;
}

/* Run the program: @a input on stdin, collect stdout and stderr, wait.
 * Never blocks past the timeout: the pipes are non-blocking on our side
 * and watched together. */
static void run_program(ca_command_t *cmd, const char *const *env,
                        const char *input, apr_size_t input_len,
                        cmd_run_t *run)
{
    apr_status_t rv;
    apr_file_t *in, *out, *err;
    apr_pollfd_t pfd[3];
    apr_size_t written = 0;
    apr_time_t deadline;
    int out_open = 1, err_open = 1, in_open = 1;
    char buf[120];

    run->out = apr_palloc(run->pool, CMD_MAX_STDOUT + 1);
    run->err = apr_palloc(run->pool, CMD_MAX_STDERR + 1);

    if ((rv = spawn_program(cmd, env, run)) != APR_SUCCESS) {
        run->run_error = apr_psprintf(
            run->pool, "cannot run it: exec of %s failed: %s%s", cmd->program,
            apr_strerror(rv, buf, sizeof(buf)),
            rv == ENOENT && access(cmd->program, F_OK) == 0
            ? " (is the interpreter named on its first line missing?)" : "");
        return;
    }
    deadline = apr_time_now() + cmd->timeout;
    in = run->proc.in;
    out = run->proc.out;
    err = run->proc.err;

    if (input_len == 0) {
        apr_file_close(in);
        in_open = 0;
    }
    while (out_open || err_open) {
        apr_int32_t n = 0, nsds = 0, i;
        apr_interval_time_t left = deadline - apr_time_now();

        if (left <= 0) {
            run->timed_out = 1;
            break;
        }
        memset(pfd, 0, sizeof(pfd));
        if (in_open) {
            pfd[n].p = run->pool;
            pfd[n].desc_type = APR_POLL_FILE;
            pfd[n].reqevents = APR_POLLOUT;
            pfd[n].desc.f = in;
            n++;
        }
        if (out_open) {
            pfd[n].p = run->pool;
            pfd[n].desc_type = APR_POLL_FILE;
            pfd[n].reqevents = APR_POLLIN;
            pfd[n].desc.f = out;
            n++;
        }
        if (err_open) {
            pfd[n].p = run->pool;
            pfd[n].desc_type = APR_POLL_FILE;
            pfd[n].reqevents = APR_POLLIN;
            pfd[n].desc.f = err;
            n++;
        }
        rv = apr_poll(pfd, n, &nsds, left);
        if (APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (APR_STATUS_IS_TIMEUP(rv)) {
            run->timed_out = 1;
            break;
        }
        if (rv != APR_SUCCESS) {
            run->run_error = apr_psprintf(run->pool, "poll: %s",
                                          apr_strerror(rv, buf, sizeof(buf)));
            break;
        }
        for (i = 0; i < n; i++) {
            if (!pfd[i].rtnevents) {
                continue;
            }
            if (pfd[i].desc.f == in) {
                apr_size_t k = input_len - written;
                /* EPIPE when it exits without reading: fine (httpd ignores
                 * SIGPIPE) */
                rv = (pfd[i].rtnevents & APR_POLLOUT)
                     ? apr_file_write(in, input + written, &k) : APR_EOF;
                if (rv == APR_SUCCESS || APR_STATUS_IS_EAGAIN(rv)) {
                    written += k;
                }
                if ((rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv))
                    || written >= input_len) {
                    apr_file_close(in);
                    in_open = 0;
                }
            }
            else if (pfd[i].desc.f == out) {
                if (drain(out, run, 1)) {
                    out_open = 0;
                }
            }
            else if (drain(err, run, 0)) {
                err_open = 0;
            }
        }
        if (run->too_much) {
            break;
        }
    }
    if (in_open) {
        apr_file_close(in);
    }
    /* stdout and stderr are closed: wait for the exit, within the time */
    while (!run->timed_out && !run->too_much && !run->run_error
           && !child_gone(run)) {
        if (apr_time_now() >= deadline) {
            run->timed_out = 1;
            break;
        }
        apr_sleep(apr_time_from_msec(5));
    }
    if (run->timed_out || run->too_much || run->run_error) {
        child_kill(run);
    }
    else {
        child_reap(run);
    }
    run->out[run->out_len] = '\0';
    run->err[run->err_len] = '\0';
}

/* ---- reading the answer ------------------------------------------------- */

/* The first non-empty line of @a s, cleaned and bounded. */
static const char *first_line(const char *s, apr_size_t max, apr_pool_t *p)
{
    const char *e;

    while (*s == '\n' || *s == '\r' || *s == ' ' || *s == '\t') {
        s++;
    }
    for (e = s; *e && *e != '\n' && *e != '\r'; e++) {
    }
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    if ((apr_size_t)(e - s) > max) {
        return apr_pstrcat(p, clean(apr_pstrmemdup(p, s, max), p), "...",
                           NULL);
    }
    return clean(apr_pstrmemdup(p, s, e - s), p);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return " (SIGSEGV)";
    case SIGABRT: return " (SIGABRT)";
    case SIGBUS: return " (SIGBUS)";
    case SIGFPE: return " (SIGFPE)";
    case SIGILL: return " (SIGILL)";
    case SIGKILL: return " (SIGKILL)";
    case SIGTERM: return " (SIGTERM)";
    default: return "";
    }
}

static int issued_by(X509 *cert, X509 *ca)
{
    EVP_PKEY *k = X509_get0_pubkey(ca);

    return X509_check_issued(ca, cert) == X509_V_OK && k
           && X509_verify(cert, k) == 1;
}

/* stdout of exit 0: PEM certificates only, the first one for the CSR's
 * key, issued by one of the endpoint's CA certificates or by one printed
 * after it.  NULL and @a certs set, or the reason. */
static const char *parse_certs(ca_command_t *cmd, const scep_ca_request_t *req,
                               cmd_run_t *run, STACK_OF(X509) **certs,
                               apr_pool_t *p)
{
    BIO *bio = BIO_new_mem_buf(run->out, (int)run->out_len);
    STACK_OF(X509) *sk = scep_own_certs(p, sk_X509_new_null());
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    const char *why = NULL;
    X509 *leaf;
    int i, ok;

    if (bio == NULL || sk == NULL) {
        BIO_free(bio);
        return "out of memory";
    }
    while (PEM_read_bio(bio, &name, &header, &data, &len) == 1) {
        const unsigned char *q = data;
        X509 *x = NULL;

        if (!strcmp(name, PEM_STRING_X509)
            || !strcmp(name, PEM_STRING_X509_OLD)) {
            x = d2i_X509(NULL, &q, len);
            if (x == NULL || q != data + len) {
                X509_free(x);
                why = apr_psprintf(p, "PEM certificate %d on stdout does "
                                   "not parse: %s", sk_X509_num(sk) + 1,
                                   scep_ssl_errors(p));
            }
            else {
                sk_X509_push(sk, x);
            }
        }
        else {
            why = apr_psprintf(p, "stdout holds a PEM \"%s\" block, not a "
                               "certificate", clean(name, p));
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = NULL;
        data = NULL;
        if (why) {
            break;
        }
    }
    BIO_free(bio);
    ERR_clear_error();   /* the end of the PEM data reads as an error */
    if (why) {
        return why;
    }
    if (sk_X509_num(sk) == 0) {
        return run->out_len ? "exited 0 but printed no PEM certificate on "
                              "stdout"
                            : "exited 0 but printed nothing on stdout";
    }
    leaf = sk_X509_value(sk, 0);
    if (req->csr == NULL) {
        return "the request's CSR is not known (not kept while pending): "
               "cannot check the certificate";
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(leaf),
                    X509_REQ_get0_pubkey(req->csr)) != 1) {
        ERR_clear_error();
        return apr_psprintf(p, "the certificate it printed first (%s) is not "
                            "for the CSR's public key",
                            scep_name_str(X509_get_subject_name(leaf), p));
    }
    ok = 0;
    for (i = 1; i < sk_X509_num(sk) && !ok; i++) {
        ok = issued_by(leaf, sk_X509_value(sk, i));
    }
#if APR_HAS_THREADS
    apr_thread_mutex_lock(cmd->mutex);
#endif
    for (i = 0; i < cmd->issuers->nelts && !ok; i++) {
        ok = issued_by(leaf, APR_ARRAY_IDX(cmd->issuers, i, X509 *));
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(cmd->mutex);
#endif
    ERR_clear_error();
    if (!ok) {
        return apr_psprintf(p, "the certificate it printed first (%s) is not "
                            "signed by the endpoint's CA "
                            "(SCEPCACertificateFile) nor by a certificate it "
                            "printed after it; issuer %s",
                            scep_name_str(X509_get_subject_name(leaf), p),
                            scep_name_str(X509_get_issuer_name(leaf), p));
    }
    *certs = sk;
    return NULL;
}

static apr_status_t command_call(ca_command_t *cmd,
                                 const scep_ca_request_t *req,
                                 const char *reference,
                                 scep_ca_reply_t *reply, apr_pool_t *p)
{
    cmd_run_t run;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;
    const char *why = NULL, *what = reference ? "poll" : "enroll";
    STACK_OF(X509) *certs = NULL;

    memset(&run, 0, sizeof(run));
    reply->status = SCEP_CA_ERROR;
    reply->certs = NULL;
    reply->reference = NULL;
    reply->reason = NULL;
    if (apr_pool_create(&run.pool, p) != APR_SUCCESS) {
        reply->reason = apr_psprintf(p, "%s: out of memory", cmd->program);
        return APR_ENOMEM;
    }
    if (req->csr) {
        bio = BIO_new(BIO_s_mem());
        if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req->csr)) {
            BIO_free(bio);
            apr_pool_destroy(run.pool);
            reply->reason = apr_psprintf(p, "%s: cannot write the CSR: %s",
                                         cmd->program, scep_ssl_errors(p));
            return APR_SUCCESS;
        }
        pem_len = BIO_get_mem_data(bio, &pem);
    }
    run_program(cmd, make_env(req, reference, run.pool), pem,
                (apr_size_t)pem_len, &run);
    BIO_free(bio);

    if (run.run_error) {
        why = run.run_error;
    }
    else if (run.timed_out) {
        why = apr_psprintf(p, "timed out after %" APR_TIME_T_FMT " s "
                           "(killed)%s%s", apr_time_sec(cmd->timeout),
                           run.err_len ? "; stderr: " : "",
                           run.err_len ? first_line(run.err, CMD_MAX_REASON,
                                                    p) : "");
    }
    else if (run.too_much) {
        why = apr_psprintf(p, "printed more than %d bytes on stdout "
                           "(killed)", CMD_MAX_STDOUT);
    }
    else if (run.why_signal) {
        why = apr_psprintf(p, "killed by signal %d%s%s%s", run.code,
                           signal_name(run.code),
                           run.err_len ? "; stderr: " : "",
                           run.err_len ? first_line(run.err, CMD_MAX_REASON,
                                                    p) : "");
    }
    else if (run.code == CMD_EXIT_ISSUED) {
        why = parse_certs(cmd, req, &run, &certs, p);
        if (why == NULL) {
            reply->status = SCEP_CA_ISSUED;
            reply->certs = certs;
        }
    }
    else if (run.code == CMD_EXIT_PENDING) {
        const char *ref = first_line(run.out, CMD_MAX_REFERENCE + 1, p);
        if (reference) {
            /* still pending: the reference stays the one kept */
            reply->status = SCEP_CA_PENDING;
            reply->reference = reference;
        }
        else if (!*ref || strlen(ref) > CMD_MAX_REFERENCE) {
            why = apr_psprintf(p, "exit status 3 (pending) needs a reference "
                               "of 1 to %d characters on the first line of "
                               "stdout", CMD_MAX_REFERENCE);
        }
        else {
            reply->status = SCEP_CA_PENDING;
            reply->reference = ref;
        }
    }
    else if (run.code == CMD_EXIT_REJECTED) {
        const char *r = first_line(run.err, CMD_MAX_REASON, p);
        reply->status = SCEP_CA_REJECTED;
        reply->reason = apr_psprintf(p, "%s: %s", cmd->program,
                                     *r ? r : "rejected (no reason on "
                                              "stderr)");
    }
    else {
        const char *r = first_line(run.err, CMD_MAX_REASON, p);
        why = apr_psprintf(p, "exited with status %d%s%s", run.code,
                           *r ? ": " : " (nothing on stderr)", r);
    }
    if (why) {
        reply->status = SCEP_CA_ERROR;
        reply->certs = NULL;
        reply->reference = NULL;
        reply->reason = apr_psprintf(p, "%s (%s): %s", cmd->program, what,
                                     why);
    }
    apr_pool_destroy(run.pool);
    return APR_SUCCESS;
}

static apr_status_t command_enroll(void *instance,
                                   const scep_ca_request_t *req,
                                   scep_ca_reply_t *reply, apr_pool_t *p)
{
    return command_call(instance, req, NULL, reply, p);
}

static apr_status_t command_poll(void *instance, const scep_ca_request_t *req,
                                 const char *reference,
                                 scep_ca_reply_t *reply, apr_pool_t *p)
{
    if (reference == NULL || !*reference) {
        memset(reply, 0, sizeof(*reply));
        reply->status = SCEP_CA_ERROR;
        reply->reason = apr_psprintf(p, "%s (poll): no reference kept for "
                                     "this transaction",
                                     ((ca_command_t *)instance)->program);
        return APR_SUCCESS;
    }
    return command_call(instance, req, reference, reply, p);
}

const scep_ca_provider_t scep_ca_command_provider = {
    "command",
    command_create,
    command_init,
    command_enroll,
    command_poll,
    NULL,   /* get_cert: the store answers GetCert */
    NULL,   /* get_crl */
    NULL    /* revoke */
};
