/* Licensed under the Apache License, Version 2.0.
 *
 * The SQL store: one-time passwords and transactions through apr_dbd.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_global_mutex.h>

#include "scep_store.h"
#include "scep_certstore.h"

/* Portable SQL only: apr_dbd turns %s into each driver's placeholder.
 * Arguments go as text; the databases convert to the column types. */
const scep_store_stmt_t scep_store_statements[] = {
    { "scep_pw_count",
      "SELECT COUNT(*) FROM scep_password "
      "WHERE endpoint = %s AND state = 0 AND expires > %lld" },
    { "scep_pw_expired",
      "SELECT COUNT(*) FROM scep_password "
      "WHERE endpoint = %s AND state = 0 AND expires <= %lld" },
    { "scep_pw_insert",
      "INSERT INTO scep_password (hash, endpoint, created, expires, issuer, "
      "bind_cn, bind_san, bind_profile, state) "
      "VALUES (%s, %s, %lld, %lld, %s, %s, %s, %s, 0)" },
    { "scep_pw_lookup",
      "SELECT id, issuer, created, expires, state, bind_cn, bind_san, "
      "bind_profile, transaction_id FROM scep_password "
      "WHERE hash = %s AND endpoint = %s" },
    { "scep_pw_reserve",
      "UPDATE scep_password SET state = 1, reserved_at = %lld, "
      "transaction_id = %s "
      /* by the row's id, found by the lookup: one B-tree descent fewer
       * under the store lock than by its hash */
      "WHERE id = %lld AND hash = %s AND endpoint = %s AND expires > %lld "
      "AND (state = 0 OR (state = 1 AND (reserved_at < %lld "
      "OR transaction_id = %s) "
      /* never take over a reservation whose transaction was issued (its
       * request died before the password was marked used) */
      "AND NOT EXISTS (SELECT 1 FROM scep_transaction t "
      "WHERE t.endpoint = scep_password.endpoint "
      "AND t.transaction_id = scep_password.transaction_id "
      "AND t.state = 1)))" },
    { "scep_pw_settle",
      "UPDATE scep_password SET state = 2, used_at = %lld "
      "WHERE endpoint = %s AND state = 1 AND transaction_id = %s" },
    { "scep_pw_consume",
      "UPDATE scep_password SET state = 2, used_at = %lld "
      "WHERE hash = %s AND state = 1 AND transaction_id = %s" },
    { "scep_pw_consume_id",
      "UPDATE scep_password SET state = 2, used_at = %lld "
      "WHERE id = %lld AND hash = %s AND state = 1 AND transaction_id = %s" },
    { "scep_pw_release",
      "UPDATE scep_password SET state = 0, reserved_at = NULL, "
      "transaction_id = NULL "
      "WHERE hash = %s AND state = 1 AND transaction_id = %s" },
    { "scep_pw_list",
      "SELECT id, issuer, created, expires, state, bind_cn, bind_san, "
      "bind_profile, transaction_id FROM scep_password "
      "WHERE endpoint = %s AND state = 0 AND expires > %lld "
      "ORDER BY created DESC, id DESC" },
    { "scep_pw_revoke",
      "UPDATE scep_password SET state = 3 "
      "WHERE id = %lld AND endpoint = %s AND state = 0" },
    { "scep_tx_get",
      "SELECT req_digest, state, certs, serial, created, csr, profile, "
      "subject, requester, reason, transaction_id, ca_ref "
      "FROM scep_transaction "
      "WHERE endpoint = %s AND transaction_id = %s" },
    { "scep_tx_caref",
      "UPDATE scep_transaction SET ca_ref = %s, csr = %s, updated = %lld "
      "WHERE endpoint = %s AND transaction_id = %s AND state = 0" },
    { "scep_tx_claim",
      "INSERT INTO scep_transaction (endpoint, transaction_id, req_digest, "
      "subject, state, created, updated, csr, profile, requester) "
      "VALUES (%s, %s, %s, %s, 0, %lld, %lld, %s, %s, %s)" },
    { "scep_tx_pending",
      "SELECT req_digest, state, certs, serial, created, csr, profile, "
      "subject, requester, reason, transaction_id, ca_ref "
      "FROM scep_transaction "
      "WHERE endpoint = %s AND state = 0 AND csr IS NOT NULL "
      "AND ca_ref IS NULL "
      "ORDER BY created, transaction_id" },
    { "scep_tx_reject",
      "UPDATE scep_transaction SET state = 2, reason = %s, decided_by = %s, "
      "csr = NULL, updated = %lld "
      "WHERE endpoint = %s AND transaction_id = %s AND state = 0" },
    { "scep_tx_decider",
      "UPDATE scep_transaction SET decided_by = %s, csr = NULL "
      "WHERE endpoint = %s AND transaction_id = %s" },
    { "scep_nonce_add",
      "INSERT INTO scep_nonce (nonce, seen) VALUES (%s, %lld)" },
    { "scep_nonce_get",
      "SELECT seen FROM scep_nonce WHERE nonce = %s" },
    { "scep_nonce_purge",
      "DELETE FROM scep_nonce WHERE seen < %lld" },
    { "scep_tx_issued",
      "UPDATE scep_transaction SET state = 1, certs = %s, serial = %s, "
      "updated = %lld WHERE endpoint = %s AND transaction_id = %s" },
    { "scep_tx_forget",
      "DELETE FROM scep_transaction "
      "WHERE endpoint = %s AND transaction_id = %s AND state = 1 "
      "AND serial = %s" },
    { "scep_tx_delete",
      "DELETE FROM scep_transaction "
      "WHERE endpoint = %s AND transaction_id = %s AND state = 0" },
    { "scep_check",
      "SELECT (SELECT COUNT(*) FROM scep_password WHERE 1 = 0) + "
      "(SELECT COUNT(*) FROM scep_transaction WHERE 1 = 0) + "
      "(SELECT COUNT(*) FROM scep_certificate WHERE 1 = 0) + "
      "(SELECT COUNT(*) FROM scep_crl WHERE 1 = 0) + "
      "(SELECT COUNT(*) FROM scep_nonce WHERE 1 = 0)" },
    { NULL, NULL }
};

const char *scep_store_i64(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static apr_dbd_prepared_t *stmt(scep_db_t *db, const char *label,
                                const char **why, apr_pool_t *p)
{
    apr_dbd_prepared_t *st = db && db->prepared
        ? apr_hash_get(db->prepared, label, APR_HASH_KEY_STRING) : NULL;

    if (st == NULL) {
        *why = apr_psprintf(p, "statement %s is not prepared (schema "
                            "missing, or mod_dbd not configured for this "
                            "server?)", label);
    }
    return st;
}

/* A PostgreSQL session that mod_dbd reset (apr_dbd_check_conn after the
 * database restarted) has lost the statements mod_dbd prepared when it
 * opened the connection: prepare them again on the same handle, under the
 * same names, so that the connection recovers by itself. */
static int lost_statements(scep_db_t *db, int rc)
{
    const char *e = apr_dbd_error(db->driver, db->handle, rc);

    return e && strstr(e, "prepared statement") && strstr(e, "does not exist");
}

static void prepare_again(scep_db_t *db, apr_pool_t *p)
{
    const scep_store_stmt_t *const sets[] = {
        scep_store_statements, scep_certstore_statements, NULL
    };
    const scep_store_stmt_t *const *set;
    const scep_store_stmt_t *st;

    for (set = sets; *set; set++) {
        for (st = *set; st->label; st++) {
            apr_dbd_prepared_t *ps = NULL;
            apr_dbd_prepare(db->driver, p, db->handle, st->sql, st->label,
                            &ps);
        }
    }
}

/* ---- grouped commits (SQLite) -------------------------------------------
 *
 * An enrollment writes four to six rows (nonce, claim, password, then the
 * outcome, the certificate, the password again).  Each autocommitted
 * statement is a commit and, with synchronous = FULL, a sync of the WAL.
 * Grouping them into two transactions (before the CA is asked, and after)
 * keeps every row as durable as before, at a third of the syncs.
 *
 * apr_dbd_sqlite3 holds one process-wide mutex around each sqlite3 call and
 * waits for a busy database inside it, and SQLite's busy handler polls with
 * sleeps that grow to 100 ms.  A thread that met the write lock of a group
 * held by another thread of its own process would hold that mutex until
 * busy_timeout, and the group could never commit; children polling for
 * each other's lock gave p99 latencies a hundred times the median.  So
 * every writer of the module takes one lock shared by all children (httpd's
 * Mutex "scep-store"): the holder of a group for the whole group, any
 * other write for its one statement.  SQLite's own lock is then always
 * free for us, and waiting is a queue, not a poll. */
static apr_global_mutex_t *group_lock;

void scep_store_child_init(apr_global_mutex_t *lock)
{
    group_lock = lock;
}

static int groups(const scep_db_t *db)
{
    return group_lock != NULL && db != NULL && db->driver != NULL
           && strcmp(apr_dbd_name(db->driver), "sqlite3") == 0;
}

/* ---- syncing after the lock (SQLite in WAL mode) -----------------------
 *
 * With synchronous = FULL a commit writes its WAL frames and syncs the WAL
 * while it holds the write lock, so every writer of every child waited for
 * the disk of the one before it: the lock was held 0.48 ms per group, 0.38
 * of them in fdatasync, and at 700 enrollments/s the writers queued for it.
 * A group of a connection in WAL mode with synchronous FULL (or EXTRA) now
 * commits with NORMAL (the frames are written, the WAL is not synced), and
 * the lock is released before the WAL is synced through SQLite's own file
 * handle (SQLITE_FCNTL_JOURNAL_POINTER, xSync).  The WAL is one file
 * appended in order, so a sync of it that starts after the commit returned
 * makes that commit durable, whoever's frames follow.  A durable commit
 * returns only once its sync did; the caller answers only then, as with
 * FULL.  The commit before the CA is asked (scep_store_publish) skips the
 * sync: what it wrote becomes durable with the request's next commit, and
 * nothing is answered in between.
 *
 * sqlite3_file_control() is taken from the SQLite library apr_dbd_sqlite3
 * loaded (RTLD_NOLOAD): mod_scep does not link SQLite. */
typedef int (*file_control_fn)(sqlite3 *, const char *, int, void *);
static file_control_fn file_control;

/* ---- checkpoints after the lock (SQLite in WAL mode) -------------------
 *
 * SQLite checkpoints in the commit that makes the WAL reach
 * wal_autocheckpoint frames (1000 by default): it copies those pages into
 * the database file and syncs it, while that commit still holds the write
 * lock and so ours.  With a million-row store those pages are scattered
 * over gigabytes and the sync is long; every writer of every child waited
 * for it.  A connection that takes part in groups gets a WAL hook instead
 * of SQLite's (which is one too: sqlite3_wal_autocheckpoint() installs
 * it): the hook only notes that the WAL reached the connection's
 * wal_autocheckpoint, and the thread runs a PASSIVE checkpoint after it
 * released the lock (and synced its commit).  A passive checkpoint takes
 * no write lock: other writers go on meanwhile; when another checkpoint is
 * running it returns at once and the next commit tries again.  A
 * connection whose wal_autocheckpoint is 0 (DBDInitSQL "PRAGMA
 * wal_autocheckpoint = 0": checkpoints left to an outside job) keeps that. */
typedef void *(*wal_hook_fn)(sqlite3 *,
                             int (*)(void *, sqlite3 *, const char *, int),
                             void *);
typedef int (*wal_checkpoint_fn)(sqlite3 *, const char *, int, int *, int *);
static wal_hook_fn wal_hook;
static wal_checkpoint_fn wal_checkpoint;

typedef struct {
    int wal;     /* WAL with synchronous FULL or EXTRA: commit at NORMAL,
                    sync after the lock */
    int level;   /* synchronous as configured, put back after each group */
    int ckpt_at; /* wal_autocheckpoint; 0: the hook is not ours */
    volatile int ckpt_due; /* the WAL reached ckpt_at frames */
    /* BEGIN and COMMIT, prepared once per connection; NULL: not */
    apr_dbd_prepared_t *begin, *commit;
} conn_sync_t;

/* the WAL's size after the last commit of this process */
static volatile apr_uint32_t wal_last;

/* SQLite calls it after each commit of the connection, in that thread */
static int wal_frames(void *data, sqlite3 *h, const char *name, int frames)
{
    conn_sync_t *cs = data;

    (void)h;
    (void)name;
    wal_last = (apr_uint32_t)frames;
    if (frames >= cs->ckpt_at) {
        cs->ckpt_due = 1;
    }
    return SQLITE_OK;
}

/* one checkpointing thread per process; SQLite's checkpoint lock keeps
 * those of the other children out (a passive checkpoint that cannot take
 * it returns SQLITE_BUSY at once) */
static volatile apr_uint32_t checkpointing;

/* After the lock: the checkpoint SQLite would have run in the commit.
 * First the bulk of it, while other writers go on; then, under the lock,
 * the frames they appended meanwhile (a few): only a WAL copied to its
 * end is started again from its beginning by the next writer, and a WAL
 * that is never copied to its end grows, and each commit checkpoints. */
static void checkpoint_after(scep_db_t *db, conn_sync_t *cs)
{
    sqlite3 *h;
    int log = 0, done = 0;

    if (cs == NULL || !cs->ckpt_due) {
        return;
    }
    cs->ckpt_due = 0;
    if (apr_atomic_cas32(&checkpointing, 1, 0) != 0) {
        return;
    }
    h = apr_dbd_native_handle(db->driver, db->handle);
    if (wal_checkpoint(h, "main", SQLITE_CHECKPOINT_PASSIVE, &log,
                       &done) == SQLITE_OK) {
        apr_global_mutex_lock(group_lock);
        /* not when a writer of this process started the WAL again since:
         * it holds the frames of a few commits, left for the next one */
        if (wal_last >= (apr_uint32_t)log) {
            wal_checkpoint(h, "main", SQLITE_CHECKPOINT_PASSIVE, &log,
                           &done);
        }
        apr_global_mutex_unlock(group_lock);
    }
    apr_atomic_set32(&checkpointing, 0);
}

static apr_dbd_prepared_t *prepare(scep_db_t *db, apr_pool_t *cp,
                                   const char *sql)
{
    apr_dbd_prepared_t *st = NULL;

    return apr_dbd_prepare(db->driver, cp, db->handle, sql, NULL, &st) == 0
           ? st : NULL;
}

/* run one of them, or the same SQL unprepared */
static int run(scep_db_t *db, apr_dbd_prepared_t *st, const char *sql,
               apr_pool_t *p)
{
    int n = 0;

    if (st && p) {
        return apr_dbd_pquery(db->driver, p, db->handle, &n, st, 0, NULL);
    }
    return apr_dbd_query(db->driver, db->handle, &n, sql);
}

#define CONN_SYNC_KEY "scep-store-sync"

static const char *pragma_value(scep_db_t *db, const char *sql,
                                apr_pool_t *p)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *v = NULL;

    if (apr_dbd_select(db->driver, p, db->handle, &res, sql, 0) != 0) {
        return NULL;
    }
    while (apr_dbd_get_row(db->driver, p, res, &row, -1) == 0) {
        if (v == NULL) {
            v = apr_pstrdup(p, apr_dbd_get_entry(db->driver, row, 0));
        }
    }
    return v;
}

/* What this connection's commits need, found out once per connection and
 * kept in the connection's pool (NULL: commit as configured). */
static conn_sync_t *conn_sync(scep_db_t *db, apr_pool_t *p)
{
    apr_pool_t *cp;
    conn_sync_t *cs = NULL;
    const char *mode, *level;
    sqlite3 *h;
    int wal;

    if (db->prepared == NULL
        || (cp = apr_hash_pool_get(db->prepared)) == NULL) {
        return NULL;
    }
    apr_pool_userdata_get((void **)&cs, CONN_SYNC_KEY, cp);
    if (cs) {
        return cs;
    }
    cs = apr_pcalloc(cp, sizeof(*cs));
    if (file_control == NULL) {
        void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD);
        if (lib) {
            wal_hook = (wal_hook_fn)dlsym(lib, "sqlite3_wal_hook");
            wal_checkpoint = (wal_checkpoint_fn)dlsym(
                lib, "sqlite3_wal_checkpoint_v2");
            file_control = (file_control_fn)dlsym(lib, "sqlite3_file_control");
            dlclose(lib);
        }
    }
    h = apr_dbd_native_handle(db->driver, db->handle);
    mode = pragma_value(db, "PRAGMA journal_mode", p);
    wal = h != NULL && mode != NULL && !strcasecmp(mode, "wal");
    level = pragma_value(db, "PRAGMA synchronous", p);
    cs->level = level ? atoi(level) : -1;
    cs->wal = wal && file_control != NULL
              && (cs->level == 2 || cs->level == 3);
    if (wal && wal_hook && wal_checkpoint && groups(db)) {
        const char *at = pragma_value(db, "PRAGMA wal_autocheckpoint", p);

        cs->ckpt_at = at ? atoi(at) : 0;
        if (cs->ckpt_at > 0) {
            wal_hook(h, wal_frames, cs);
        }
    }
    /* not the PRAGMAs: SQLite applies PRAGMA synchronous when it compiles
     * the statement, and a prepared one does nothing when it runs */
    cs->begin = prepare(db, cp, "BEGIN IMMEDIATE");
    cs->commit = prepare(db, cp, "COMMIT");
    apr_pool_userdata_setn(cs, CONN_SYNC_KEY, NULL, cp);
    return cs;
}

static apr_status_t sync_wal(scep_db_t *db, const char **why, apr_pool_t *p)
{
    sqlite3_file *f = NULL;
    int rc;

    rc = file_control(apr_dbd_native_handle(db->driver, db->handle), "main",
                      SQLITE_FCNTL_JOURNAL_POINTER, &f);
    if (rc != SQLITE_OK || f == NULL || f->pMethods == NULL) {
        *why = "committed, but SQLite has no WAL file to sync";
        return APR_EGENERAL;
    }
    if ((rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL)) != SQLITE_OK) {
        *why = p ? apr_psprintf(p, "committed, but syncing the WAL failed "
                                "(SQLite error %d)", rc)
                 : "committed, but syncing the WAL failed";
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t group_cleanup(void *data)
{
    scep_db_t *db = data;
    const char *why = NULL;

    if (db->grouped) {
        scep_store_commit(db, &why, NULL);
    }
    return APR_SUCCESS;
}

/* db->grouped: 1 a group at the configured level, 2 a group at NORMAL
 * whose sync comes after the lock */
apr_status_t scep_store_begin(scep_db_t *db, const char **why, apr_pool_t *p)
{
    int rc, late = 0;
    conn_sync_t *cs;

    if (!groups(db) || db->grouped) {
        return APR_SUCCESS;
    }
    if ((cs = conn_sync(db, p)) != NULL && cs->wal) {
        /* not within a transaction: SQLite refuses that */
        late = run(db, NULL, "PRAGMA synchronous = NORMAL", p) == 0;
    }
    apr_global_mutex_lock(group_lock);
    rc = run(db, cs ? cs->begin : NULL, "BEGIN IMMEDIATE", p);
    if (rc != 0) {
        *why = apr_psprintf(p, "BEGIN IMMEDIATE: %s",
                            apr_dbd_error(db->driver, db->handle, rc));
        if (late) {
            run(db, NULL, apr_psprintf(p, "PRAGMA synchronous = %d",
                                       cs->level), p);
        }
        apr_global_mutex_unlock(group_lock);
        return APR_EGENERAL;
    }
    db->grouped = late ? 2 : 1;
    apr_pool_cleanup_register(p, db, group_cleanup, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

static apr_status_t commit(scep_db_t *db, int durable, const char **why,
                           apr_pool_t *p)
{
    int n = 0, rc, late;
    apr_status_t rv = APR_SUCCESS;
    char restore[32];
    conn_sync_t *cs;

    if (db == NULL || !db->grouped) {
        return APR_SUCCESS;
    }
    late = db->grouped == 2;
    cs = db->prepared ? conn_sync(db, p ? p : apr_hash_pool_get(
                                      db->prepared)) : NULL;
    rc = run(db, cs ? cs->commit : NULL, "COMMIT", p);
    if (rc != 0) {
        if (p) {
            *why = apr_psprintf(p, "COMMIT: %s (rolled back)",
                                apr_dbd_error(db->driver, db->handle, rc));
        }
        else {
            *why = "COMMIT failed (rolled back)";
        }
        apr_dbd_query(db->driver, db->handle, &n, "ROLLBACK");
        rv = APR_EGENERAL;
    }
    db->grouped = 0;
    apr_global_mutex_unlock(group_lock);
    if (late) {
        /* the connection's own setting: no need for the lock */
        apr_snprintf(restore, sizeof(restore), "PRAGMA synchronous = %d",
                     cs ? cs->level : 2);
        if (run(db, NULL, restore, p) != 0 && cs) {
            /* never leave the connection's other writes unsynced */
            cs->wal = 0;
            apr_dbd_query(db->driver, db->handle, &n, restore);
        }
    }
    if (rv == APR_SUCCESS && late && durable) {
        rv = sync_wal(db, why, p);
    }
    checkpoint_after(db, cs);
    return rv;
}

apr_status_t scep_store_commit(scep_db_t *db, const char **why,
                               apr_pool_t *p)
{
    return commit(db, 1, why, p);
}

apr_status_t scep_store_publish(scep_db_t *db, const char **why,
                                apr_pool_t *p)
{
    return commit(db, 0, why, p);
}

apr_status_t scep_store_exec(scep_db_t *db, const char *label, int *nrows,
                             const char **why, apr_pool_t *p,
                             int nargs, const char **args)
{
    apr_dbd_prepared_t *st = stmt(db, label, why, p);
    int rc, n = 0, lock;

    if (st == NULL) {
        return APR_EGENERAL;
    }
    lock = !db->grouped && groups(db);
    if (lock) {
        apr_global_mutex_lock(group_lock);
    }
    rc = apr_dbd_pquery(db->driver, p, db->handle, &n, st, nargs, args);
    if (rc != 0 && lost_statements(db, rc)) {
        prepare_again(db, p);
        rc = apr_dbd_pquery(db->driver, p, db->handle, &n, st, nargs, args);
    }
    if (lock) {
        apr_global_mutex_unlock(group_lock);
        checkpoint_after(db, conn_sync(db, p));
    }
    if (rc != 0) {
        *why = apr_psprintf(p, "%s: %s", label,
                            apr_dbd_error(db->driver, db->handle, rc));
        return APR_EGENERAL;
    }
    if (nrows) {
        *nrows = n;
    }
    return APR_SUCCESS;
}

/* Run a select and hand back all rows as arrays of strings.  Random access
 * (seek 1): apr_dbd_pgsql checks the result only then (a failing select
 * read as "no rows" otherwise) and sleeps 100 ms on an empty sequential
 * result. */
apr_status_t scep_store_select(scep_db_t *db, const char *label,
                               apr_array_header_t **out, const char **why,
                               apr_pool_t *p, int nargs, const char **args)
{
    apr_dbd_prepared_t *st = stmt(db, label, why, p);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_array_header_t *rows;
    int rc, cols, i;

    if (st == NULL) {
        return APR_EGENERAL;
    }
    rc = apr_dbd_pselect(db->driver, p, db->handle, &res, st, 1, nargs, args);
    if (rc != 0 && lost_statements(db, rc)) {
        prepare_again(db, p);
        res = NULL;
        rc = apr_dbd_pselect(db->driver, p, db->handle, &res, st, 1, nargs,
                             args);
    }
    if (rc != 0) {
        *why = apr_psprintf(p, "%s: %s", label,
                            apr_dbd_error(db->driver, db->handle, rc));
        return APR_EGENERAL;
    }
    rows = apr_array_make(p, 4, sizeof(const char **));
    cols = apr_dbd_num_cols(db->driver, res);
    while (apr_dbd_get_row(db->driver, p, res, &row, -1) == 0) {
        const char **vals;
        /* room for the fixed columns callers read, whatever came back */
        vals = apr_pcalloc(p, sizeof(char *) * (cols > 16 ? cols + 1 : 17));
        for (i = 0; i < cols; i++) {
            const char *v = apr_dbd_get_entry(db->driver, row, i);
            vals[i] = v ? apr_pstrdup(p, v) : NULL;
        }
        APR_ARRAY_PUSH(rows, const char **) = vals;
    }
    *out = rows;
    return APR_SUCCESS;
}

apr_int64_t scep_store_to_i64(const char *s)
{
    return s ? apr_atoi64(s) : 0;
}

static const char *nz(const char *s)
{
    return (s && *s) ? s : NULL;
}

apr_status_t scep_store_count(scep_db_t *db, const char *label,
                              apr_int64_t *count, const char **why,
                              apr_pool_t *p, int nargs, const char **args)
{
    apr_array_header_t *rows;
    apr_status_t rv = scep_store_select(db, label, &rows, why, p, nargs,
                                        args);

    *count = 0;
    if (rv == APR_SUCCESS && rows->nelts) {
        *count = scep_store_to_i64(APR_ARRAY_IDX(rows, 0, const char **)[0]);
    }
    return rv;
}

/* A COUNT(*) of a pool's passwords against the clock. */
static apr_status_t pw_count(scep_db_t *db, const char *label,
                             const char *endpoint, apr_int64_t now,
                             int *count, const char **why, apr_pool_t *p)
{
    const char *args[2];
    apr_int64_t n = 0;
    apr_status_t rv;

    args[0] = endpoint;
    args[1] = scep_store_i64(now, p);
    rv = scep_store_count(db, label, &n, why, p, 2, args);
    *count = (int)n;
    return rv;
}

apr_status_t scep_pw_count_live(scep_db_t *db, const char *endpoint,
                                apr_int64_t now, int *count,
                                const char **why, apr_pool_t *p)
{
    return pw_count(db, "scep_pw_count", endpoint, now, count, why, p);
}

apr_status_t scep_pw_count_expired(scep_db_t *db, const char *endpoint,
                                   apr_int64_t now, int *count,
                                   const char **why, apr_pool_t *p)
{
    return pw_count(db, "scep_pw_expired", endpoint, now, count, why, p);
}

apr_status_t scep_pw_insert(scep_db_t *db, const char *endpoint,
                            const char *hash, apr_int64_t created,
                            apr_int64_t expires, const char *issuer,
                            const scep_challenge_binding_t *bind,
                            const char **why, apr_pool_t *p)
{
    const char *args[8];

    args[0] = hash;
    args[1] = endpoint;
    args[2] = scep_store_i64(created, p);
    args[3] = scep_store_i64(expires, p);
    args[4] = issuer ? issuer : "-";
    args[5] = bind ? nz(bind->cn) : NULL;
    args[6] = bind ? nz(bind->san) : NULL;
    args[7] = bind ? nz(bind->profile) : NULL;
    return scep_store_exec(db, "scep_pw_insert", NULL, why, p, 8, args);
}

static scep_pw_row_t *pw_row(const char **v, apr_pool_t *p)
{
    scep_pw_row_t *r = apr_pcalloc(p, sizeof(*r));

    r->id = v[0];
    r->issuer = v[1];
    r->created = scep_store_to_i64(v[2]);
    r->expires = scep_store_to_i64(v[3]);
    r->state = (int)scep_store_to_i64(v[4]);
    r->bind_cn = nz(v[5]);
    r->bind_san = nz(v[6]);
    r->bind_profile = nz(v[7]);
    r->transaction_id = nz(v[8]);
    return r;
}

apr_status_t scep_pw_lookup(scep_db_t *db, const char *endpoint,
                            const char *hash, scep_pw_row_t **row,
                            const char **why, apr_pool_t *p)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;

    *row = NULL;
    args[0] = hash;
    args[1] = endpoint;
    rv = scep_store_select(db, "scep_pw_lookup", &rows, why, p, 2, args);
    if (rv == APR_SUCCESS && rows->nelts > 0) {
        *row = pw_row(APR_ARRAY_IDX(rows, 0, const char **), p);
    }
    return rv;
}

apr_status_t scep_pw_reserve(scep_db_t *db, const char *endpoint,
                             const scep_pw_row_t *row, const char *hash,
                             const char *tid, apr_int64_t now, int *reserved,
                             const char **why, apr_pool_t *p)
{
    const char *args[8];
    int n = 0;
    apr_status_t rv;

    args[0] = scep_store_i64(now, p);
    args[1] = tid;
    args[2] = row->id;
    args[3] = hash;
    args[4] = endpoint;
    args[5] = args[0];
    args[6] = scep_store_i64(now - SCEP_PW_RESERVE_STALE, p);
    args[7] = tid;   /* the same transaction again (a retry of one that
                      * died) may take its own reservation back */
    rv = scep_store_exec(db, "scep_pw_reserve", &n, why, p, 8, args);
    *reserved = rv == APR_SUCCESS && n == 1;
    return rv;
}

apr_status_t scep_pw_finish(scep_db_t *db, const char *id, const char *hash,
                            const char *tid, int consume, apr_int64_t now,
                            const char **why, apr_pool_t *p)
{
    const char *args[4];

    if (consume && id) {
        args[0] = scep_store_i64(now, p);
        args[1] = id;
        args[2] = hash;
        args[3] = tid;
        return scep_store_exec(db, "scep_pw_consume_id", NULL, why, p, 4,
                               args);
    }
    if (consume) {
        args[0] = scep_store_i64(now, p);
        args[1] = hash;
        args[2] = tid;
        return scep_store_exec(db, "scep_pw_consume", NULL, why, p, 3, args);
    }
    args[0] = hash;
    args[1] = tid;
    return scep_store_exec(db, "scep_pw_release", NULL, why, p, 2, args);
}

apr_status_t scep_pw_settle(scep_db_t *db, const char *endpoint,
                            const char *tid, apr_int64_t now,
                            const char **why, apr_pool_t *p)
{
    const char *args[3];

    args[0] = scep_store_i64(now, p);
    args[1] = endpoint;
    args[2] = tid;
    return scep_store_exec(db, "scep_pw_settle", NULL, why, p, 3, args);
}

apr_status_t scep_pw_list(scep_db_t *db, const char *endpoint,
                          apr_int64_t now, apr_array_header_t **out,
                          const char **why, apr_pool_t *p)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    args[0] = endpoint;
    args[1] = scep_store_i64(now, p);
    rv = scep_store_select(db, "scep_pw_list", &rows, why, p, 2, args);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = apr_array_make(p, rows->nelts, sizeof(scep_pw_row_t *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, scep_pw_row_t *) =
            pw_row(APR_ARRAY_IDX(rows, i, const char **), p);
    }
    return APR_SUCCESS;
}

apr_status_t scep_pw_revoke(scep_db_t *db, const char *endpoint,
                            const char *id, int *done,
                            const char **why, apr_pool_t *p)
{
    const char *args[2];
    int n = 0;
    apr_status_t rv;

    args[0] = id;
    args[1] = endpoint;
    rv = scep_store_exec(db, "scep_pw_revoke", &n, why, p, 2, args);
    *done = rv == APR_SUCCESS && n == 1;
    return rv;
}

static scep_tx_row_t *tx_row(const char **v, apr_pool_t *p)
{
    scep_tx_row_t *r = apr_pcalloc(p, sizeof(*r));

    r->req_digest = v[0];
    r->state = (int)scep_store_to_i64(v[1]);
    r->certs = nz(v[2]);
    r->serial = nz(v[3]);
    r->created = scep_store_to_i64(v[4]);
    r->csr = nz(v[5]);
    r->profile = nz(v[6]);
    r->subject = nz(v[7]);
    r->requester = nz(v[8]);
    r->reason = nz(v[9]);
    r->transaction_id = v[10];
    r->ca_ref = nz(v[11]);
    return r;
}

apr_status_t scep_tx_get(scep_db_t *db, const char *endpoint, const char *tid,
                         scep_tx_row_t **row, const char **why,
                         apr_pool_t *p)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;

    *row = NULL;
    args[0] = endpoint;
    args[1] = tid;
    rv = scep_store_select(db, "scep_tx_get", &rows, why, p, 2, args);
    if (rv == APR_SUCCESS && rows->nelts > 0) {
        *row = tx_row(APR_ARRAY_IDX(rows, 0, const char **), p);
    }
    return rv;
}

apr_status_t scep_tx_list_pending(scep_db_t *db, const char *endpoint,
                                  apr_array_header_t **out, const char **why,
                                  apr_pool_t *p)
{
    const char *args[1];
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    args[0] = endpoint;
    rv = scep_store_select(db, "scep_tx_pending", &rows, why, p, 1, args);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *out = apr_array_make(p, rows->nelts, sizeof(scep_tx_row_t *));
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, scep_tx_row_t *) =
            tx_row(APR_ARRAY_IDX(rows, i, const char **), p);
    }
    return APR_SUCCESS;
}

apr_status_t scep_tx_reject(scep_db_t *db, const char *endpoint,
                            const char *tid, const char *reason,
                            const char *who, apr_int64_t now, int *done,
                            const char **why, apr_pool_t *p)
{
    const char *args[5];
    int n = 0;
    apr_status_t rv;

    args[0] = reason;
    args[1] = who;
    args[2] = scep_store_i64(now, p);
    args[3] = endpoint;
    args[4] = tid;
    rv = scep_store_exec(db, "scep_tx_reject", &n, why, p, 5, args);
    *done = rv == APR_SUCCESS && n == 1;
    return rv;
}

apr_status_t scep_tx_set_decider(scep_db_t *db, const char *endpoint,
                                 const char *tid, const char *who,
                                 const char **why, apr_pool_t *p)
{
    const char *args[3];

    args[0] = who;
    args[1] = endpoint;
    args[2] = tid;
    return scep_store_exec(db, "scep_tx_decider", NULL, why, p, 3, args);
}

static apr_uint32_t nonce_purge_due;

apr_status_t scep_nonce_check(scep_db_t *db, const char *nonce_hex,
                              apr_int64_t now, apr_int64_t window,
                              int *replayed, const char **why, apr_pool_t *p)
{
    const char *args[2];
    apr_array_header_t *rows;
    apr_status_t rv;
    int n = 0;

    *replayed = 0;
    args[0] = nonce_hex;
    args[1] = scep_store_i64(now, p);
    rv = scep_store_exec(db, "scep_nonce_add", &n, why, p, 2, args);
    if (rv == APR_SUCCESS && n == 1) {
        /* now and then (once a minute per process, not for every request
         * of one second in 64), forget nonces older than the window */
        apr_uint32_t due = apr_atomic_read32(&nonce_purge_due);
        if ((apr_uint32_t)now >= due
            && apr_atomic_cas32(&nonce_purge_due, (apr_uint32_t)now + 60,
                                due) == due) {
            const char *w2 = NULL;
            args[0] = scep_store_i64(now - window, p);
            scep_store_exec(db, "scep_nonce_purge", NULL, &w2, p, 1, args);
        }
        return APR_SUCCESS;
    }
    /* the insert failed: seen before (primary key), or a real error */
    if (scep_store_select(db, "scep_nonce_get", &rows, why, p, 1, args)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (rows->nelts == 0) {
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    *why = NULL;
    if (scep_store_to_i64(APR_ARRAY_IDX(rows, 0, const char **)[0]) >= now - window) {
        *replayed = 1;
    }
    return APR_SUCCESS;
}

apr_status_t scep_tx_claim(scep_db_t *db, const char *endpoint,
                           const char *tid, const char *digest,
                           const char *subject, const char *csr_b64,
                           const char *profile, const char *requester,
                           apr_int64_t now, int *claimed, const char **why,
                           apr_pool_t *p)
{
    const char *args[9];
    scep_tx_row_t *row = NULL;
    const char *w2 = NULL;
    int n = 0;
    apr_status_t rv;

    args[0] = endpoint;
    args[1] = tid;
    args[2] = digest;
    args[3] = subject;
    args[4] = scep_store_i64(now, p);
    args[5] = args[4];
    args[6] = csr_b64;
    args[7] = profile;
    args[8] = requester;
    rv = scep_store_exec(db, "scep_tx_claim", &n, why, p, 9, args);
    *claimed = rv == APR_SUCCESS && n == 1;
    if (rv != APR_SUCCESS
        && scep_tx_get(db, endpoint, tid, &row, &w2, p) == APR_SUCCESS
        && row != NULL) {
        /* the primary key refused a second row: another request has it */
        *why = NULL;
        return APR_SUCCESS;
    }
    return rv;
}

apr_status_t scep_tx_set_issued(scep_db_t *db, const char *endpoint,
                                const char *tid, const char *certs_b64,
                                const char *serial, apr_int64_t now,
                                const char **why, apr_pool_t *p)
{
    const char *args[5];

    args[0] = certs_b64;
    args[1] = serial;
    args[2] = scep_store_i64(now, p);
    args[3] = endpoint;
    args[4] = tid;
    return scep_store_exec(db, "scep_tx_issued", NULL, why, p, 5, args);
}

apr_status_t scep_tx_delete(scep_db_t *db, const char *endpoint,
                            const char *tid, const char **why,
                            apr_pool_t *p)
{
    const char *args[2];

    args[0] = endpoint;
    args[1] = tid;
    return scep_store_exec(db, "scep_tx_delete", NULL, why, p, 2, args);
}

apr_status_t scep_tx_set_ca_ref(scep_db_t *db, const char *endpoint,
                               const char *tid, const char *ref,
                               const char *csr_b64, apr_int64_t now,
                               const char **why, apr_pool_t *p)
{
    const char *args[5];

    args[0] = ref;
    args[1] = csr_b64;
    args[2] = scep_store_i64(now, p);
    args[3] = endpoint;
    args[4] = tid;
    return scep_store_exec(db, "scep_tx_caref", NULL, why, p, 5, args);
}

apr_status_t scep_tx_forget_issued(scep_db_t *db, const char *endpoint,
                                   const char *tid, const char *serial,
                                   const char **why, apr_pool_t *p)
{
    const char *args[3];

    args[0] = endpoint;
    args[1] = tid;
    args[2] = serial;
    return scep_store_exec(db, "scep_tx_forget", NULL, why, p, 3, args);
}

apr_status_t scep_store_check(scep_db_t *db, const char **why,
                              apr_pool_t *p)
{
    apr_array_header_t *rows;

    return scep_store_select(db, "scep_check", &rows, why, p, 0, NULL);
}
