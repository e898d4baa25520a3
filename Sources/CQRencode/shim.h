/* Thin header over Debian's libqrencode (libqrencode-dev); no logic lives here. */
#ifndef WABRIDGE_CQRENCODE_SHIM_H
#define WABRIDGE_CQRENCODE_SHIM_H
#include <qrencode.h>
#endif
