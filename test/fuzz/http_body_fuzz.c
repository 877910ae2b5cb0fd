/*
 * http_body_fuzz - libFuzzer target for the HTTP/1.1 body decoder.
 *
 * Build and run (clang; see test/fuzz/Makefile): make -C test/fuzz run
 *
 * The first input byte picks the framing and how the rest is cut into
 * pieces; the rest is decoded once whole and once in those pieces, each
 * piece in a buffer of exactly its size. Both runs must agree on the
 * result, where the body ended and the bytes given back; every run of body
 * bytes must lie inside what was fed, and every call with input must use
 * some of it or end or fail.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <magpie/http1.h>

static void check(int cond)
{
    if (!cond)
        abort();
}

typedef struct result {
    int rc;
    size_t end;
    size_t out_len;
    uint64_t sum; /* a position-weighted checksum of the bytes given back */
} result_t;

static void decode(result_t *res, unsigned framing, uint64_t max, const uint8_t *in, size_t len,
                   unsigned piece_seed)
{
    mag_http_body_t b;
    check(mag_http_body_init(&b, framing, len / 2, max) == 0 || framing == MAG_HTTP_BODY_LENGTH);
    if (framing == MAG_HTTP_BODY_LENGTH && len / 2 > max) {
        res->rc = -EFBIG;
        return;
    }
    res->rc = 0;
    res->end = 0;
    res->out_len = 0;
    res->sum = 0;
    size_t start = 0;
    unsigned seed = piece_seed;
    while (start < len && res->rc == 0) {
        size_t plen = len - start;
        if (piece_seed) {
            seed = seed * 1103515245u + 12345u;
            size_t cap = 1 + (seed >> 16) % 17;
            plen = plen < cap ? plen : cap;
        }
        char *piece = malloc(plen);
        if (!piece)
            abort();
        memcpy(piece, in + start, plen);
        size_t pos = 0;
        while (pos < plen) {
            size_t used, n;
            const char *o;
            int rc = mag_http_body_feed(&b, piece + pos, plen - pos, &used, &o, &n);
            check(used <= plen - pos);
            check(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EFBIG);
            if (n) {
                check(o >= piece + pos && o + n <= piece + pos + used);
                for (size_t i = 0; i < n; i++)
                    res->sum = res->sum * 31 + (unsigned char)o[i];
                res->out_len += n;
            }
            pos += used;
            if (rc != 0) {
                check(rc == 1 || (used == 0 && n == 0));
                res->rc = rc;
                res->end = start + pos;
                break;
            }
            check(used > 0);
        }
        free(piece);
        start += plen;
    }
    check(res->out_len <= max);
    if (res->rc == 0)
        (void)mag_http_body_finish(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned framing = data[0] & 3;
    uint64_t max = (data[0] & 4) ? 64 : UINT64_MAX;
    unsigned seed = data[0] | 1u;
    result_t whole, cut;
    decode(&whole, framing, max, data + 1, size - 1, 0);
    decode(&cut, framing, max, data + 1, size - 1, seed);
    check(whole.rc == cut.rc);
    if (whole.rc >= 0) {
        check(whole.out_len == cut.out_len && whole.sum == cut.sum);
        if (whole.rc == 1)
            check(whole.end == cut.end);
    }
    return 0;
}
