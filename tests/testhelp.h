/* testhelp.h - a tiny in-tree test harness (after libuv's task.h and Redis's testhelp.h).
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_EQ_STR(s, "x"); }
 *   int main(void) { RUN(name); return test_report(); }
 *
 * A failed check prints file:line and both values, marks the test failed and returns
 * from it. test_report() prints "N passed, N failed" and returns the exit status. */
#ifndef SLUICE_TESTHELP_H
#define SLUICE_TESTHELP_H

#include <stdio.h>
#include <string.h>

static int th_passed, th_failed, th_cur_failed;

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                                                  \
    do {                                                                                           \
        th_cur_failed = 0;                                                                         \
        test_##name();                                                                             \
        if (th_cur_failed) {                                                                       \
            th_failed++;                                                                           \
            fprintf(stderr, "FAIL %s\n", #name);                                                   \
        } else {                                                                                   \
            th_passed++;                                                                           \
        }                                                                                          \
    } while (0)

#define TH_FAIL(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        th_cur_failed = 1;                                                                         \
        return;                                                                                    \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TH_FAIL("check failed: %s", #cond);                                                    \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long th_a = (long long)(a), th_b = (long long)(b);                                    \
        if (th_a != th_b)                                                                          \
            TH_FAIL("%s == %s: %lld != %lld", #a, #b, th_a, th_b);                                 \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *th_a = (a), *th_b = (b);                                                       \
        if (!th_a || !th_b || strcmp(th_a, th_b) != 0)                                             \
            TH_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, th_a ? th_a : "(null)",                  \
                    th_b ? th_b : "(null)");                                                       \
    } while (0)

static inline int test_report(void)
{
    printf("%d passed, %d failed\n", th_passed, th_failed);
    return th_failed ? 1 : 0;
}

#endif
