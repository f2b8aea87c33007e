/* libFuzzer target for the WebSocket upgrade request parser: any bytes, any
 * length limit; the parser must never read past the buffer, and what it
 * accepts must hold a well-formed key and NUL-terminated fields. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/ws/handshake.h"

static const char *const supported[] = { "mqtt", "v12.stomp", "v11.stomp", "v10.stomp", "stomp",
					 NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	size_t limits[] = { 64, 1024, 8192 };
	for (size_t i = 0; i < 3; i++) {
		struct ws_request req;
		size_t used = 0;
		int status = 0;
		const char *why = NULL;
		enum ws_hs_status st = ws_handshake_parse(buf, size, limits[i], &req, &used, &status, &why);
		if (st == WS_HS_OK) {
			if (used > size || strlen(req.key) != 24)
				abort();
			char accept[29];
			ws_accept_value(req.key, accept);
			if (strlen(accept) != 28)
				abort();
			ws_pick_protocol(req.protocols, supported);
			(void)strlen(req.origin);
		} else if (st == WS_HS_ERROR && (!why || status < 400 || status > 499)) {
			abort();
		}
	}
	free(buf);
	return 0;
}
