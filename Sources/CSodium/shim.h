/*
 * Thin shim over libsodium (>= 1.0.18) for WACrypto.
 *
 * Why it exists: WACrypto needs Ed25519 group and scalar operations that
 * swift-crypto does not expose (scalar multiplication of the base point by
 * an unclamped scalar, scalar reduce/mul/add mod L) to build libsignal's
 * XEdDSA-style signatures. Only the headers of those primitives are pulled
 * in; no logic lives in C.
 */
#ifndef WABRIDGE_CSODIUM_SHIM_H
#define WABRIDGE_CSODIUM_SHIM_H

#include <sodium/core.h>
#include <sodium/crypto_core_ed25519.h>
#include <sodium/crypto_scalarmult_ed25519.h>
#include <sodium/crypto_sign_ed25519.h>
#include <sodium/utils.h>

#endif
