/*
 * http_fuzz - libFuzzer target for the HTTP/1.x request-head parser.
 *
 * Build and run (clang; see test/fuzz/Makefile):
 *   make -C test/fuzz            # builds build/fuzz/http_fuzz
 *   make -C test/fuzz run        # 60 s run (FUZZ_SECONDS=... to change)
 * or by hand from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -I. \
 *       test/fuzz/http_fuzz.c io/http1.c -o build/fuzz/http_fuzz
 *
 * The input is parsed as a stream of pipelined requests, the way the example
 * server does: each complete head is consumed, its body decoded with the
 * framing the parser chose (Content-Length or chunked), and the rest parsed
 * again. Every result must be one the header documents and every pointer
 * must stay inside the input.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that a read past the end is caught. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    mag_http_request_t req;
    size_t pos = 0;
    while (pos < size) {
        int r = mag_http_parse_request(buf + pos, size - pos, &req);
        check(r == 0 || r > 0 || r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT ||
              r == -ENAMETOOLONG || r == -EOPNOTSUPP);
        if (r <= 0)
            break;
        check((size_t)r <= size - pos && r <= (int)MAG_HTTP_MAX_HEAD);
        const char *lo = buf + pos, *hi = buf + pos + r;
        check(req.method >= lo && req.method + req.method_len <= hi);
        check(req.target >= lo && req.target + req.target_len <= hi);
        check(req.nheaders <= MAG_HTTP_MAX_HEADERS);
        for (uint32_t i = 0; i < req.nheaders; i++) {
            const mag_http_header_t *h = &req.headers[i];
            check(h->name >= lo && h->name + h->name_len <= hi);
            check(h->value >= lo && h->value + h->value_len <= hi);
        }
        check(req.minor_version == 0 || mag_http_find_header(&req, "host") != NULL);
        check(req.framing != MAG_HTTP_BODY_CLOSE);
        pos += (size_t)r;
        mag_http_body_t b;
        if (mag_http_body_init(&b, req.framing, req.content_length, 1u << 20) < 0)
            break;
        int rc = 0;
        while (rc == 0 && pos < size) {
            size_t used, n;
            const char *o;
            rc = mag_http_body_feed(&b, buf + pos, size - pos, &used, &o, &n);
            check(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EFBIG);
            check(n == 0 || (o >= buf + pos && o + n <= buf + pos + used));
            pos += used;
        }
        if (rc != 1)
            break;
    }
    free(buf);
    return 0;
}
