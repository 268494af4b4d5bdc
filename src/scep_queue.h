/* Licensed under the Apache License, Version 2.0.
 *
 * A counting semaphore of the CORE whose waiters are served in the order
 * they came, each waiting at most a given time: the glue's limit on the
 * database connections of a child (SCEPDBDConnections).  A released unit
 * goes straight to the longest waiter, so a request that has waited is
 * not overtaken by ones that arrive later.
 */
#ifndef SCEP_QUEUE_H
#define SCEP_QUEUE_H

#include <apr_pools.h>
#include <apr_time.h>

typedef struct scep_queue_t scep_queue_t;

/** @a max units, the lock and the waiters' records in @a p. */
apr_status_t scep_queue_create(scep_queue_t **q, int max, apr_pool_t *p);

/** 1: a unit is the caller's (give it back with scep_queue_give); 0: none
 * came to it within @a wait. */
int scep_queue_take(scep_queue_t *q, apr_interval_time_t wait);

void scep_queue_give(scep_queue_t *q);

/** Threads waiting now (for tests and status). */
int scep_queue_waiting(scep_queue_t *q);

#endif /* SCEP_QUEUE_H */
