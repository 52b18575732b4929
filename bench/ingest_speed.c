/* ingest_speed.c - throughput of the streaming submit-body parser (src/ingest).
 *
 * Reads a whole body into memory, then parses it 5 times with a fresh parser each time,
 * feeding 64 KiB chunks as an HTTP server would, and prints the median in MB/s
 * (10^6 bytes per second). The item callback only sums lengths, so the figure is the
 * parser's own cost. Build by hand, e.g.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Isrc bench/ingest_speed.c src/ingest/jscan.c src/ingest/ingest.c
 * \ src/util/xmalloc.c src/util/errors.c -o /tmp/ingest_speed /tmp/ingest_speed body.json
 * [json|ndjson]
 *
 * A body: python3 gen_products.py 200000, each line wrapped as {"ref": sku, "data": line},
 * inside {"workflow": "...", "items": [...]} (or one wrapped object per line for ndjson). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ingest.h"

#define RUNS 5
#define CHUNK (64 * 1024)

struct tally {
    unsigned long long items, bytes;
};

static int on_item(void *ctx, const struct ingest_item *it)
{
    struct tally *t = ctx;
    t->items++;
    t->bytes += it->data_len + it->ref_len;
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [json|ndjson]\n", argv[0]);
        return 2;
    }
    enum ingest_format fmt =
        argc > 2 && strcmp(argv[2], "ndjson") == 0 ? INGEST_NDJSON : INGEST_JSON;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)len);
    if (!body || fread(body, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);

    double mbs[RUNS];
    struct tally t = {0, 0};
    for (int r = 0; r < RUNS; r++) {
        t.items = t.bytes = 0;
        struct ingest *in = ingest_new(fmt, NULL, on_item, NULL, &t);
        double t0 = now();
        int rc = 0;
        for (long off = 0; off < len && rc == 0; off += CHUNK)
            rc = ingest_feed(in, body + off, (size_t)(len - off < CHUNK ? len - off : CHUNK));
        if (rc == 0)
            rc = ingest_finish(in);
        double dt = now() - t0;
        if (rc < 0) {
            fprintf(stderr, "parse failed: %s\n", ingest_last_error(in)->message);
            return 1;
        }
        ingest_free(in);
        mbs[r] = (double)len / dt / 1e6;
    }
    qsort(mbs, RUNS, sizeof mbs[0], cmp_double);
    printf(
        "%s: %ld bytes, %llu items (%llu ref+data bytes), median %.0f MB/s (min %.0f, max %.0f)\n",
        argv[1], len, t.items, t.bytes, mbs[RUNS / 2], mbs[0], mbs[RUNS - 1]);
    return 0;
}
