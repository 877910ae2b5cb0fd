/* runtime/group.h - what task.c calls into groups for. */
#ifndef MAGPIE_RUNTIME_GROUP_H
#define MAGPIE_RUNTIME_GROUP_H

#include "runtime/sched.h"

/* Links a new member into its group's running list before it is scheduled. */
MAG_HIDDEN void mag__group_link(mag_task_t *t);
/* Called on the worker where a member's body returned. */
MAG_HIDDEN void mag__group_member_done(mag_task_t *t);
/* mag__spawn with group membership (group NULL: a plain spawn). */
MAG_HIDDEN int mag__spawn_member(mag_runtime_t *rt, mag_task_t **out, mag_fn fn, void *arg,
                                 const mag_spawn_opts_t *opts, struct mag_group *group, int id);

#endif
