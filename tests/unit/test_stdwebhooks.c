/* test_stdwebhooks.c - unit tests for src/engine/stdwebhooks.c: the signature against the
 * Standard Webhooks reference libraries' published test vector, the secret's shape, and
 * the arguments it refuses. (That real receivers accept what sluice sends is
 * tests/api/test_45_callback_formats.py, with the standardwebhooks npm package.) */
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "engine/stdwebhooks.h"
#include "testhelp.h"
#include "util/errors.h"

TEST(published_vector)
{
    /* The vector every Standard Webhooks reference library tests its sign() with
     * (their tests of sign(): secret, msg id, timestamp, payload, expected signature). */
    const char *b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"; /* whsec_ stripped */
    const char *body = "{\"test\": 2432232314}";
    unsigned char key[32];
    char sig[STDWH_SIG_SIZE];
    CHECK_EQ_INT(EVP_DecodeBlock(key, (const unsigned char *)b64, (int)strlen(b64)), 24);
    CHECK_EQ_INT(
        stdwh_sign(key, 24, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig),
        0);
    CHECK_EQ_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* one byte of the body or of the timestamp changes it */
    CHECK_EQ_INT(
        stdwh_sign(key, 24, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), sig),
        0);
    CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
}

TEST(secret_shape)
{
    unsigned char key[STDWH_KEY_SIZE], back[STDWH_KEY_SIZE + 2];
    char secret[STDWH_SECRET_SIZE];
    for (int i = 0; i < STDWH_KEY_SIZE; i++)
        key[i] = (unsigned char)(i * 37 + 5);
    stdwh_secret(key, secret);
    CHECK_EQ_INT(strlen(secret), STDWH_SECRET_SIZE - 1);
    CHECK(strncmp(secret, "whsec_", 6) == 0);
    /* base64 of 32 bytes: 44 characters, 1 of padding, 33 bytes decoded by OpenSSL */
    CHECK_EQ_INT(EVP_DecodeBlock(back, (const unsigned char *)secret + 6, 44), 33);
    CHECK(memcmp(back, key, STDWH_KEY_SIZE) == 0);
}

TEST(refused_arguments)
{
    unsigned char key[STDWH_KEY_SIZE] = {1};
    char sig[STDWH_SIG_SIZE];
    char long_id[STDWH_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, "", 1, "{}", 2, sig), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, NULL, 1, "{}", 2, sig), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, "a.b", 1, "{}", 2, sig), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, long_id, 1, "{}", 2, sig),
                 -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(stdwh_sign(key, 0, "id", 1, "{}", 2, sig), -SLUICE_E_INVALID_PARAMETER);
    CHECK_EQ_INT(stdwh_sign(key, 65, "id", 1, "{}", 2, sig), -SLUICE_E_INVALID_PARAMETER);
    long_id[STDWH_ID_MAX] = '\0'; /* the longest id allowed */
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, long_id, 1, "{}", 2, sig), 0);
    CHECK_EQ_INT(stdwh_sign(key, sizeof key, "id", 1, NULL, 0, sig), 0); /* an empty body */
    CHECK_EQ_INT(strlen(sig), STDWH_SIG_SIZE - 1);
}

int main(void)
{
    RUN(published_vector);
    RUN(secret_shape);
    RUN(refused_arguments);
    return test_report();
}
