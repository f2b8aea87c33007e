/* The link's proof of the secret (ha/auth.h). */
#include "config.h"
#include "ha/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

int repl_nonce(uint8_t out[REPL_NONCE])
{
	return RAND_bytes(out, REPL_NONCE) == 1 ? 0 : -1;
}

int repl_proof(const char *secret, const char *label, const uint8_t n1[REPL_NONCE],
	       const uint8_t n2[REPL_NONCE], uint8_t out[REPL_MAC])
{
	uint8_t msg[64 + 2 * REPL_NONCE];
	size_t ll = strlen(label);
	if (ll > 64)
		return -1;
	memcpy(msg, label, ll);
	memcpy(msg + ll, n1, REPL_NONCE);
	memcpy(msg + ll + REPL_NONCE, n2, REPL_NONCE);
	unsigned len = 0;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, ll + 2 * REPL_NONCE, out, &len) ||
	    len != REPL_MAC)
		return -1;
	return 0;
}

bool repl_proof_ok(const char *secret, const char *label, const uint8_t n1[REPL_NONCE],
		   const uint8_t n2[REPL_NONCE], const uint8_t got[REPL_MAC])
{
	uint8_t want[REPL_MAC];
	if (repl_proof(secret, label, n1, n2, want) < 0)
		return false;
	return CRYPTO_memcmp(want, got, REPL_MAC) == 0;
}
