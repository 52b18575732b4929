/* slots.h - per-tenant shares of the server's shared request slots.
 *
 * Some requests hold a scarce resource for a long time: an upload holds a staging
 * batch in memory, an event stream or long poll holds a connection. Each kind is a
 * pool with a server-wide size; without shares one tenant could take a whole pool
 * and every other tenant would be turned away for it. Here a tenant may hold at most
 * max(1, size * share / 100) slots of each pool: past that it gets 429 (its own
 * load), while the pool's other slots stay for the other tenants. Health probes
 * never take a slot. Thread-safe. */
#ifndef SLUICE_API_SLOTS_H
#define SLUICE_API_SLOTS_H

enum slot_pool {
    SLOT_UPLOAD, /* submits receiving their body (--max-uploads) */
    SLOT_PARKED, /* event streams and long polls (--max-parked) */
    SLOT__COUNT
};

struct slots;

/* size[p]: slots of pool p for all tenants (0 = unbounded: no share either);
 * share_percent: 1..100, each tenant's part of every pool. Never fails. */
struct slots *slots_new(const unsigned size[SLOT__COUNT], unsigned share_percent);
void slots_free(struct slots *s);

/* Takes a slot of pool p for tenant. Returns 0 (give it back with slots_give),
 * -SLUICE_E_TENANT_SHARE when the tenant holds its share, or -SLUICE_E_SERVER_BUSY
 * when the pool is full. */
int slots_take(struct slots *s, enum slot_pool p, const char *tenant);
/* Gives back a slot slots_take() granted. */
void slots_give(struct slots *s, enum slot_pool p, const char *tenant);
/* The most slots of pool p one tenant may hold (0 = no cap). */
unsigned slots_tenant_cap(const struct slots *s, enum slot_pool p);

#endif
