/*
 * runtime/version.c - mag_version, compiled into the library so that it
 * reports the headers the library was built with, not those of the caller.
 */
#include "magpie/version.h"

const char *mag_version(void)
{
    return MAG_VERSION_STRING;
}
