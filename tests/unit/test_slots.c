/* test_slots.c - per-tenant shares of shared slots (api/slots.h): the share, the pool
 * cap, giving back, the floor of one slot, no share at 100 %, threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "api/slots.h"
#include "testhelp.h"
#include "util/errors.h"

static struct slots *mk(unsigned uploads, unsigned parked, unsigned share)
{
    unsigned size[SLOT__COUNT] = {[SLOT_UPLOAD] = uploads, [SLOT_PARKED] = parked};
    return slots_new(size, share);
}

TEST(a_tenant_at_its_share_leaves_the_rest_to_others)
{
    struct slots *s = mk(4, 10, 50);
    CHECK_EQ_INT((int)slots_tenant_cap(s, SLOT_UPLOAD), 2);
    CHECK_EQ_INT((int)slots_tenant_cap(s, SLOT_PARKED), 5);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "acme"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "acme"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "acme"), -SLUICE_E_TENANT_SHARE);
    /* pools are separate */
    CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "acme"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "globex"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "globex"), 0);
    /* the pool is full: the pool's answer, whoever asks */
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "initech"), -SLUICE_E_SERVER_BUSY);
    slots_give(s, SLOT_UPLOAD, "acme");
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "initech"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "acme"), -SLUICE_E_SERVER_BUSY);
    slots_give(s, SLOT_UPLOAD, "initech");
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "acme"), 0);
    slots_free(s);
}

TEST(floor_of_one_and_no_share_at_100)
{
    struct slots *s = mk(1, 3, 10);
    CHECK_EQ_INT((int)slots_tenant_cap(s, SLOT_UPLOAD), 1);
    CHECK_EQ_INT((int)slots_tenant_cap(s, SLOT_PARKED), 1);
    CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "a"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "a"), -SLUICE_E_TENANT_SHARE);
    slots_free(s);
    s = mk(3, 0, 100);
    CHECK_EQ_INT((int)slots_tenant_cap(s, SLOT_UPLOAD), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "a"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "a"), -SLUICE_E_SERVER_BUSY);
    /* a pool of size 0 is unbounded */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "a"), 0);
    slots_free(s);
}

TEST(giving_back_what_was_not_taken_changes_nothing)
{
    struct slots *s = mk(2, 2, 50);
    slots_give(s, SLOT_UPLOAD, "nobody");
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "a"), 0);
    slots_give(s, SLOT_PARKED, "a"); /* holds no parked slot */
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "b"), 0);
    CHECK_EQ_INT(slots_take(s, SLOT_UPLOAD, "c"), -SLUICE_E_SERVER_BUSY);
    slots_free(s);
}

TEST(many_tenants)
{
    struct slots *s = mk(0, 1000, 1); /* each tenant: 10 */
    char name[32];
    for (int i = 0; i < 99; i++) {
        snprintf(name, sizeof name, "t%d", i);
        for (int k = 0; k < 10; k++)
            CHECK_EQ_INT(slots_take(s, SLOT_PARKED, name), 0);
        CHECK_EQ_INT(slots_take(s, SLOT_PARKED, name), -SLUICE_E_TENANT_SHARE);
    }
    CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "last"), 0); /* 991 of 1000 */
    for (int i = 0; i < 99; i++) {
        snprintf(name, sizeof name, "t%d", i);
        for (int k = 0; k < 10; k++)
            slots_give(s, SLOT_PARKED, name);
    }
    for (int k = 0; k < 10; k++)
        CHECK_EQ_INT(slots_take(s, SLOT_PARKED, "t7"), 0);
    slots_free(s);
}

static struct slots *shared;
static int granted[8];
static atomic_int holding[2], over_cap;

static void *taker(void *arg)
{
    int id = (int)(long)arg;
    char name[16];
    snprintf(name, sizeof name, "t%d", id % 2);
    for (int i = 0; i < 20000; i++) {
        if (slots_take(shared, SLOT_UPLOAD, name) == 0) {
            granted[id]++;
            if (atomic_fetch_add(&holding[id % 2], 1) + 1 > 2) /* the share is 2 of 4 */
                atomic_fetch_add(&over_cap, 1);
            atomic_fetch_sub(&holding[id % 2], 1);
            slots_give(shared, SLOT_UPLOAD, name);
        }
    }
    return NULL;
}

TEST(threads_never_exceed_the_caps)
{
    shared = mk(4, 0, 50);
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, taker, (void *)i);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    int total = 0;
    for (int i = 0; i < 8; i++)
        total += granted[i];
    CHECK(total > 0);
    CHECK_EQ_INT(atomic_load(&over_cap), 0);
    /* everything given back: the whole share is free again */
    CHECK_EQ_INT(slots_take(shared, SLOT_UPLOAD, "t0"), 0);
    CHECK_EQ_INT(slots_take(shared, SLOT_UPLOAD, "t0"), 0);
    CHECK_EQ_INT(slots_take(shared, SLOT_UPLOAD, "t0"), -SLUICE_E_TENANT_SHARE);
    slots_free(shared);
}

int main(void)
{
    RUN(a_tenant_at_its_share_leaves_the_rest_to_others);
    RUN(floor_of_one_and_no_share_at_100);
    RUN(giving_back_what_was_not_taken_changes_nothing);
    RUN(many_tenants);
    RUN(threads_never_exceed_the_caps);
    return test_report();
}
