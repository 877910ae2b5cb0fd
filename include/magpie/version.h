/*
 * magpie/version.h - the version of these headers and of the library.
 *
 * The macros give the version of the headers a program is compiled with;
 * mag_version() gives the version of the library it runs with (a shared
 * library may have been upgraded since). A program that depends on a release
 * can compare the two at start-up.
 */
#ifndef MAGPIE_VERSION_H
#define MAGPIE_VERSION_H

#include "magpie/runtime.h" /* MAG_API */

#ifdef __cplusplus
extern "C" {
#endif

#define MAG_VERSION_MAJOR 0
#define MAG_VERSION_MINOR 2
#define MAG_VERSION_PATCH 0
#define MAG_VERSION_STRING "0.2.0" /* MAJOR.MINOR.PATCH */

/* The library's own version as "MAJOR.MINOR.PATCH", the MAG_VERSION_STRING it
 * was built with: a static string, never NULL. Any thread, no runtime needed. */
MAG_API const char *mag_version(void);

#ifdef __cplusplus
}
#endif
#endif /* MAGPIE_VERSION_H */
