/* magpie/io.h - placeholder until its subsystem lands. */
#ifndef MAGPIE_IO_H
#define MAGPIE_IO_H
#include "magpie/runtime.h"
#endif
