/* The link's proof of the shared secret (docs/ha.md): HMAC-SHA256 over a
 * label and both sides' nonces, so that a recorded exchange proves nothing
 * on the next connection and neither side's answer can be replayed as the
 * other's. Pure functions over OpenSSL, any thread. */
#ifndef WHARF_HA_AUTH_H
#define WHARF_HA_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "ha/frame.h"

#define REPL_LABEL_HELLO "wharf-repl-1 hello"
#define REPL_LABEL_WELCOME "wharf-repl-1 welcome"

/* Fills a nonce from the system's CSPRNG; -1 if it has none to give. */
int repl_nonce(uint8_t out[REPL_NONCE]);
/* out = HMAC-SHA256(secret, label | n1 | n2). 0, or -1. */
int repl_proof(const char *secret, const char *label, const uint8_t n1[REPL_NONCE],
	       const uint8_t n2[REPL_NONCE], uint8_t out[REPL_MAC]);
/* Whether `got` is the proof expected, in constant time. */
bool repl_proof_ok(const char *secret, const char *label, const uint8_t n1[REPL_NONCE],
		   const uint8_t n2[REPL_NONCE], const uint8_t got[REPL_MAC]);

#endif
