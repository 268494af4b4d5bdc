/* Licensed under the Apache License, Version 2.0.
 *
 * Unit tests of scep_queue.h, the limit on a child's database connections
 * (SCEPDBDConnections): waiters are served in the order they came, a
 * newcomer does not overtake them, a waiter whose time runs out leaves its
 * place without taking a unit, and units are counted back.
 */
#include <string.h>

#include <apr_atomic.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include "scep_queue.h"
#include "tap.h"

typedef struct {
    scep_queue_t *q;
    char name;
    apr_interval_time_t wait;
    int got;
    volatile apr_uint32_t *hold;  /* keep the unit while it is 1 */
} taker_t;

static char order[16];
static volatile apr_uint32_t norder;

static void *APR_THREAD_FUNC take_give(apr_thread_t *t, void *data)
{
    taker_t *k = data;

    k->got = scep_queue_take(k->q, k->wait);
    if (k->got) {
        order[apr_atomic_inc32(&norder)] = k->name;
        while (k->hold && apr_atomic_read32(k->hold)) {
            apr_sleep(1000);
        }
        scep_queue_give(k->q);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void taker(taker_t *k, scep_queue_t *q, char name,
                  apr_interval_time_t wait, volatile apr_uint32_t *hold)
{
    memset(k, 0, sizeof(*k));
    k->q = q;
    k->name = name;
    k->wait = wait;
    k->hold = hold;
}

static void order_reset(void)
{
    memset(order, 0, sizeof(order));
    norder = 0;
}

/* start a taker and return once it waits (the queue has n waiters) */
static apr_thread_t *start_waiter(taker_t *k, int n, apr_pool_t *p)
{
    apr_thread_t *t = NULL;
    int i;

    apr_thread_create(&t, NULL, take_give, k, p);
    for (i = 0; i < 2000 && scep_queue_waiting(k->q) < n; i++) {
        apr_sleep(1000);
    }
    return t;
}

static void join(apr_thread_t *t)
{
    apr_status_t rv;

    apr_thread_join(&rv, t);
}

/* @a n waiters B, C, ... in a row, each with 20 s but C, who gives up
 * after 100 ms; the order is reset first */
static void start_with_quitter(taker_t *k, apr_thread_t **t, int n,
                               scep_queue_t *q, apr_pool_t *p)
{
    int i;

    order_reset();
    for (i = 0; i < n; i++) {
        taker(&k[i], q, (char)('B' + i),
              i == 1 ? apr_time_from_msec(100) : apr_time_from_sec(20), NULL);
        t[i] = start_waiter(&k[i], i + 1, p);
    }
}

static void test_order(apr_pool_t *p)
{
    scep_queue_t *q;
    taker_t k[3];
    apr_thread_t *t[3];
    int i;

    ok(scep_queue_create(&q, 1, p) == APR_SUCCESS, "created, one unit");
    ok(scep_queue_take(q, 0), "the unit is free: taken at once");
    ok(!scep_queue_take(q, 0), "none left, no wait: refused");
    order_reset();
    for (i = 0; i < 3; i++) {
        taker(&k[i], q, (char)('B' + i), apr_time_from_sec(20), NULL);
        t[i] = start_waiter(&k[i], i + 1, p);
    }
    is_int(scep_queue_waiting(q), 3, "three waiting, in the order B C D");
    scep_queue_give(q);
    for (i = 0; i < 3; i++) {
        join(t[i]);
    }
    ok(k[0].got && k[1].got && k[2].got, "each got the unit");
    is_str(order, "BCD", "in the order they came");
    is_int(scep_queue_waiting(q), 0, "nobody waits");
    ok(scep_queue_take(q, 0), "the unit came back");
    scep_queue_give(q);
}

static void test_no_overtaking(apr_pool_t *p)
{
    scep_queue_t *q;
    taker_t k;
    apr_thread_t *t;
    volatile apr_uint32_t hold = 1;

    scep_queue_create(&q, 2, p);
    ok(scep_queue_take(q, 0) && scep_queue_take(q, 0), "both units taken");
    order_reset();
    taker(&k, q, 'B', apr_time_from_sec(20), &hold);
    t = start_waiter(&k, 1, p);
    is_int(scep_queue_waiting(q), 1, "B waits");
    scep_queue_give(q);
    /* whether B runs yet or not, the unit is B's */
    ok(!scep_queue_take(q, 0), "a newcomer right after the release does "
       "not overtake B");
    apr_atomic_set32(&hold, 0);
    join(t);
    ok(k.got, "B got it");
    ok(scep_queue_take(q, 0), "once B gave it back it is free");
    ok(!scep_queue_take(q, 0), "and only that one");
    scep_queue_give(q);
    scep_queue_give(q);
    ok(scep_queue_take(q, 0) && scep_queue_take(q, 0), "both back");
    scep_queue_give(q);
    scep_queue_give(q);
}

static void test_timeout(apr_pool_t *p)
{
    scep_queue_t *q;
    taker_t k[3];
    apr_thread_t *t[3];
    apr_time_t t0;

    scep_queue_create(&q, 1, p);
    ok(scep_queue_take(q, 0), "held");
    t0 = apr_time_now();
    ok(!scep_queue_take(q, apr_time_from_msec(50)), "a wait of 50 ms "
       "runs out");
    ok(apr_time_now() - t0 >= apr_time_from_msec(45), "after its time");
    is_int(scep_queue_waiting(q), 0, "and leaves the queue");

    /* B and D wait long, C in between gives up: B then D */
    start_with_quitter(k, t, 3, q, p);
    join(t[1]);
    ok(!k[1].got, "C's time ran out");
    is_int(scep_queue_waiting(q), 2, "B and D still wait");
    scep_queue_give(q);
    join(t[0]);
    join(t[2]);
    is_str(order, "BD", "served B, then D: C left its place");
    ok(scep_queue_take(q, 0), "the unit came back");
    ok(!scep_queue_take(q, 0), "one unit, not two");

    /* the last of the queue gives up: the next one to come is served
     * after B, not lost behind it */
    start_with_quitter(k, t, 2, q, p);
    join(t[1]);
    ok(!k[1].got, "the last waiter's time ran out");
    taker(&k[2], q, 'E', apr_time_from_sec(20), NULL);
    t[2] = start_waiter(&k[2], 2, p);
    is_int(scep_queue_waiting(q), 2, "B and a newcomer E wait");
    scep_queue_give(q);
    join(t[0]);
    join(t[2]);
    is_str(order, "BE", "served B, then E");
    ok(scep_queue_take(q, 0), "the unit came back again");
    scep_queue_give(q);
}

int main(void)
{
    scep_tap_init();
    scep_tap_run("arrival order", test_order);
    scep_tap_run("no overtaking", test_no_overtaking);
    scep_tap_run("a wait that runs out", test_timeout);
    return scep_tap_done();
}
