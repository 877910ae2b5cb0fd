/*
 * lifecycle/config.h - what the rest of lifecycle/ asks of config.c.
 */
#ifndef MAGPIE_LIFECYCLE_CONFIG_H
#define MAGPIE_LIFECYCLE_CONFIG_H

#include "magpie/runtime.h"
#include "runtime/internal.h"

/* Copies *in to *out with every "0 = default" field replaced by its default
 * and workers 0 by the online CPU count, checks every field against its
 * range, and copies the path strings, which *out then owns (release them
 * with mag__config_free). Returns 0; -EINVAL for a field out of range, after
 * a one-line message naming the field, its value and the range; -ENOMEM.
 * On failure *out owns nothing. */
MAG_HIDDEN int mag__config_resolve(const mag_config_t *in, mag_config_t *out);

/* Frees the strings a resolved config owns; a zeroed config is fine too. */
MAG_HIDDEN void mag__config_free(mag_config_t *cfg);

#endif /* MAGPIE_LIFECYCLE_CONFIG_H */
