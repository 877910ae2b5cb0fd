/*
 * http_response_fuzz - libFuzzer target for the HTTP/1.x response-head
 * parser, together with the body decoder, the way a client reads a
 * connection.
 *
 * Build and run (clang; see test/fuzz/Makefile): make -C test/fuzz run
 *
 * The input is read as a stream of responses: each complete head is
 * parsed (the first byte says which answer a HEAD), its body decoded with
 * the framing the parser chose, and the rest parsed again. Every result
 * must be one the header documents, every pointer must stay inside the
 * input, and the framing must follow RFC 9112 section 6.3.
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
    if (size == 0)
        return 0;
    unsigned heads = data[0];
    data++, size--;
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    mag_http_response_t resp;
    size_t pos = 0;
    for (int k = 0; pos < size; k++) {
        unsigned flags = (heads >> (k & 7)) & 1 ? MAG_HTTP_RESPONSE_TO_HEAD : 0;
        int r = mag_http_parse_response(buf + pos, size - pos, flags, &resp);
        check(r >= 0 || r == -EBADMSG || r == -EMSGSIZE || r == -EPROTONOSUPPORT);
        if (r <= 0)
            break;
        check((size_t)r <= size - pos && r <= (int)MAG_HTTP_MAX_HEAD);
        const char *lo = buf + pos, *hi = buf + pos + r;
        check(resp.status >= 100 && resp.status <= 599);
        check(resp.reason >= lo && resp.reason + resp.reason_len <= hi);
        check(resp.nheaders <= MAG_HTTP_MAX_HEADERS);
        for (uint32_t i = 0; i < resp.nheaders; i++) {
            const mag_http_header_t *h = &resp.headers[i];
            check(h->name >= lo && h->name + h->name_len <= hi);
            check(h->value >= lo && h->value + h->value_len <= hi);
        }
        bool no_body = flags || resp.status < 200 || resp.status == 204 || resp.status == 304;
        check(!no_body || resp.framing == MAG_HTTP_BODY_NONE);
        check(resp.framing != MAG_HTTP_BODY_CLOSE || !(resp.flags & MAG_HTTP_KEEP_ALIVE));
        (void)mag_http_response_header(&resp, "content-type");
        pos += (size_t)r;
        mag_http_body_t b;
        if (mag_http_body_init(&b, resp.framing, resp.content_length, 1u << 20) < 0)
            break;
        int rc = 0;
        while (rc == 0 && pos < size) {
            size_t used, n;
            const char *o;
            rc = mag_http_body_feed(&b, buf + pos, size - pos, &used, &o, &n);
            check(rc == 0 || rc == 1 || rc == -EBADMSG || rc == -EFBIG);
            check(used <= size - pos);
            check(n == 0 || (o >= buf + pos && o + n <= buf + pos + used));
            pos += used;
        }
        if (rc != 1) {
            (void)mag_http_body_finish(&b);
            break;
        }
    }
    free(buf);
    return 0;
}
