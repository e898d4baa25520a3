/*
 * Thin shim over system zlib for WAClient's transport.
 *
 * Why it exists: zlib's inflateInit is a function-like macro (it passes the
 * library version and struct size), which Swift cannot call. The forward
 * below only expands it; no logic lives in C.
 */
#ifndef WABRIDGE_CZLIB_SHIM_H
#define WABRIDGE_CZLIB_SHIM_H

#include <zlib.h>

static inline int wab_inflate_init(z_streamp stream) {
  return inflateInit(stream);
}

static inline int wab_deflate_init(z_streamp stream, int level) {
  return deflateInit(stream, level);
}

#endif
