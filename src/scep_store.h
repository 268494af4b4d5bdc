/* Licensed under the Apache License, Version 2.0.
 *
 * The SQL store of the CORE: one-time passwords and SCEP transactions,
 * through apr_dbd prepared statements (portable placeholders; the glue
 * prepares scep_store_statements[] with mod_dbd and lends a connection).
 *
 * Times are Unix seconds.  Every function returns APR_SUCCESS or the
 * driver's failure, with a one-line reason in *why.
 */
#ifndef SCEP_STORE_H
#define SCEP_STORE_H

#include <apr_global_mutex.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_dbd.h>

#include "mod_scep.h"

typedef struct {
    const char *label;
    const char *sql;
} scep_store_stmt_t;

/* The SQL helpers every store file uses: run a prepared statement by
 * label (text arguments), or select all its rows as NULL-padded arrays of
 * strings (at least 17 slots), read to the end as drivers require. */
/** Once per process (child_init): the lock, shared by all processes, that
 * serialises the module's SQLite writers (NULL: statements are neither
 * grouped nor serialised). */
void scep_store_child_init(apr_global_mutex_t *lock);

/** Group the statements that follow into one transaction (one commit, one
 * sync) until scep_store_commit().  SQLite only (BEGIN IMMEDIATE under the
 * process lock); a no-op for other drivers, which commit each statement.
 * A cleanup on @a p commits a group its caller left open. */
apr_status_t scep_store_begin(scep_db_t *db, const char **why, apr_pool_t *p);

/** Commit the group scep_store_begin() opened (a no-op when none is open);
 * on failure the group is rolled back and nothing of it was written.  It
 * returns once the group is durable (SQLite in WAL mode: synced after the
 * lock is released; see scep_store.c). */
apr_status_t scep_store_commit(scep_db_t *db, const char **why,
                               apr_pool_t *p);

/** Commit the group as scep_store_commit() does, visible to every other
 * connection at once, but without waiting for the disk (SQLite in WAL mode
 * with synchronous FULL): it is durable with the next durable commit of
 * the database.  For writes that no answer depends on before the same
 * request commits again (the claim before the CA is asked). */
apr_status_t scep_store_publish(scep_db_t *db, const char **why,
                                apr_pool_t *p);

apr_status_t scep_store_exec(scep_db_t *db, const char *label, int *nrows,
                             const char **why, apr_pool_t *p,
                             int nargs, const char **args);
apr_status_t scep_store_select(scep_db_t *db, const char *label,
                               apr_array_header_t **rows, const char **why,
                               apr_pool_t *p, int nargs, const char **args);
/** The number a COUNT(*) statement selects. */
apr_status_t scep_store_count(scep_db_t *db, const char *label,
                              apr_int64_t *count, const char **why,
                              apr_pool_t *p, int nargs, const char **args);
const char *scep_store_i64(apr_int64_t v, apr_pool_t *p);
apr_int64_t scep_store_to_i64(const char *s);

/** Every statement the store uses, NULL-terminated. */
extern const scep_store_stmt_t scep_store_statements[];

/* password states */
#define SCEP_PW_UNUSED    0
#define SCEP_PW_RESERVED  1
#define SCEP_PW_USED      2
#define SCEP_PW_REVOKED   3

/** A reservation older than this is taken as abandoned (crashed child). */
#define SCEP_PW_RESERVE_STALE 1800

typedef struct {
    const char *id;
    const char *issuer;
    apr_int64_t created;
    apr_int64_t expires;
    int state;
    const char *bind_cn;
    const char *bind_san;
    const char *bind_profile;
    const char *transaction_id;
} scep_pw_row_t;

apr_status_t scep_pw_count_live(scep_db_t *db, const char *endpoint,
                                apr_int64_t now, int *count,
                                const char **why, apr_pool_t *p);

/** Passwords that expired unused (a gauge for the metrics). */
apr_status_t scep_pw_count_expired(scep_db_t *db, const char *endpoint,
                                   apr_int64_t now, int *count,
                                   const char **why, apr_pool_t *p);

apr_status_t scep_pw_insert(scep_db_t *db, const char *endpoint,
                            const char *hash, apr_int64_t created,
                            apr_int64_t expires, const char *issuer,
                            const scep_challenge_binding_t *bind,
                            const char **why, apr_pool_t *p);

/** The row of a password hash, *row NULL when unknown. */
apr_status_t scep_pw_lookup(scep_db_t *db, const char *endpoint,
                            const char *hash, scep_pw_row_t **row,
                            const char **why, apr_pool_t *p);

/** Atomically reserve an unused, unexpired password for a transaction:
 *  the password of @a hash whose row scep_pw_lookup() found (its id); the
 *  state, expiry and reservation are checked again as it is written.
 *  *reserved is 1 when this call got it. */
apr_status_t scep_pw_reserve(scep_db_t *db, const char *endpoint,
                             const scep_pw_row_t *row, const char *hash,
                             const char *tid, apr_int64_t now, int *reserved,
                             const char **why, apr_pool_t *p);

/** Consume (used) or release (unused again) a reservation of @a tid;
 *  @a id: the row's id when known (NULL: found by its hash). */
apr_status_t scep_pw_finish(scep_db_t *db, const char *id, const char *hash,
                            const char *tid, int consume, apr_int64_t now,
                            const char **why, apr_pool_t *p);

/** A transaction was issued: a password still reserved by it (its request
 *  died before marking it) is used now. */
apr_status_t scep_pw_settle(scep_db_t *db, const char *endpoint,
                            const char *tid, apr_int64_t now,
                            const char **why, apr_pool_t *p);

/** Outstanding (unused, unexpired) passwords, newest first. */
apr_status_t scep_pw_list(scep_db_t *db, const char *endpoint,
                          apr_int64_t now, apr_array_header_t **rows,
                          const char **why, apr_pool_t *p);

/** Revoke an outstanding password by id; *done 1 when one was revoked. */
apr_status_t scep_pw_revoke(scep_db_t *db, const char *endpoint,
                            const char *id, int *done,
                            const char **why, apr_pool_t *p);

/* transaction states */
#define SCEP_TX_PENDING   0
#define SCEP_TX_ISSUED    1
#define SCEP_TX_REJECTED  2

typedef struct {
    const char *transaction_id;
    const char *req_digest;  /* hex SHA-256 of the CSR DER */
    int state;
    const char *certs;       /* ISSUED: base64 DER of a degenerate PKCS#7 */
    const char *serial;
    apr_int64_t created;
    const char *csr;         /* PENDING (manual approval): base64 DER CSR */
    const char *profile;
    const char *subject;
    const char *requester;
    const char *reason;      /* REJECTED: why */
    const char *ca_ref;      /* PENDING at the CA provider: its handle */
} scep_tx_row_t;

apr_status_t scep_tx_get(scep_db_t *db, const char *endpoint, const char *tid,
                         scep_tx_row_t **row, const char **why,
                         apr_pool_t *p);

/** Insert a PENDING row; *claimed 0 when the transactionID exists.
 *  @a csr_b64 is kept only for requests that wait for approval (else NULL). */
apr_status_t scep_tx_claim(scep_db_t *db, const char *endpoint,
                           const char *tid, const char *digest,
                           const char *subject, const char *csr_b64,
                           const char *profile, const char *requester,
                           apr_int64_t now, int *claimed, const char **why,
                           apr_pool_t *p);

/** Requests waiting for an administrator, oldest first. */
apr_status_t scep_tx_list_pending(scep_db_t *db, const char *endpoint,
                                  apr_array_header_t **rows, const char **why,
                                  apr_pool_t *p);

/** Reject a pending request; *done 1 when it was pending. */
apr_status_t scep_tx_reject(scep_db_t *db, const char *endpoint,
                            const char *tid, const char *reason,
                            const char *who, apr_int64_t now, int *done,
                            const char **why, apr_pool_t *p);

/** Record who approved, and forget the kept CSR. */
apr_status_t scep_tx_set_decider(scep_db_t *db, const char *endpoint,
                                 const char *tid, const char *who,
                                 const char **why, apr_pool_t *p);

/** Remember a senderNonce; *replayed 1 when it was seen within @a window
 *  seconds. */
apr_status_t scep_nonce_check(scep_db_t *db, const char *nonce_hex,
                              apr_int64_t now, apr_int64_t window,
                              int *replayed, const char **why, apr_pool_t *p);

apr_status_t scep_tx_set_issued(scep_db_t *db, const char *endpoint,
                                const char *tid, const char *certs_b64,
                                const char *serial, apr_int64_t now,
                                const char **why, apr_pool_t *p);

apr_status_t scep_tx_delete(scep_db_t *db, const char *endpoint,
                            const char *tid, const char **why,
                            apr_pool_t *p);

/** A request the CA provider left pending: keep its handle and the CSR
 *  so that any node can poll the provider later. */
apr_status_t scep_tx_set_ca_ref(scep_db_t *db, const char *endpoint,
                               const char *tid, const char *ref,
                               const char *csr_b64, apr_int64_t now,
                               const char **why, apr_pool_t *p);

/** Forget an ISSUED transaction whose certificate (@a serial) is being
 *  renewed under the same transactionID (clients that derive it from the
 *  key, such as micromdm's, reuse it). */
apr_status_t scep_tx_forget_issued(scep_db_t *db, const char *endpoint,
                                   const char *tid, const char *serial,
                                   const char **why, apr_pool_t *p);

/** Does the schema exist (every table readable)? */
apr_status_t scep_store_check(scep_db_t *db, const char **why,
                              apr_pool_t *p);

#endif /* SCEP_STORE_H */
