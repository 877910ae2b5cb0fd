/*
 * observe/json.c - what the JSON writers of observe/ share: the stats
 * socket's metrics (metrics.c) and the trace file (trace.c).
 */
#include <stdio.h>

#include "observe/observe.h"

void mag__json_string(FILE *f, const char *s, size_t max)
{
    fputc('"', f);
    for (size_t i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            /* Each byte on its own, not decoded as UTF-8: a task name cut
             * in the middle of a character still makes valid JSON. */
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
