#include "config.h"
#include "protocols/ws/handshake.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Does the comma-separated header value hold `token` (case-insensitive)? */
static bool has_token(const char *v, size_t len, const char *token)
{
	size_t tlen = strlen(token), i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0)
			return true;
	}
	return false;
}

static bool copy_field(char *dst, size_t cap, const char *v, size_t len)
{
	if (len >= cap)
		return false;
	memcpy(dst, v, len);
	dst[len] = '\0';
	return true;
}

static enum ws_hs_status fail(int *status, const char **why, int code, const char *text)
{
	*status = code;
	*why = text;
	return WS_HS_ERROR;
}

enum ws_hs_status ws_handshake_parse(const char *buf, size_t len, size_t max,
				     struct ws_request *req, size_t *consumed, int *status,
				     const char **why)
{
	size_t scan = len < max ? len : max;
	const char *end = NULL;
	for (size_t i = 0; i + 3 < scan; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			end = buf + i + 2; /* the end of the last header line */
			break;
		}
	}
	if (!end)
		return len >= max ? fail(status, why, 431, "request headers too large") : WS_HS_NEED_MORE;
	memset(req, 0, sizeof(*req));
	*consumed = (size_t)(end - buf) + 2;

	const char *line = buf, *eol = memchr(line, '\r', (size_t)(end - line));
	size_t llen = (size_t)(eol - line);
	if (llen < 14 || memcmp(line, "GET ", 4) != 0)
		return fail(status, why, 405, "only GET upgrades to a WebSocket");
	if (memcmp(line + llen - 9, " HTTP/1.1", 9) != 0)
		return fail(status, why, 400, "expected HTTP/1.1");
	for (size_t i = 0; i < llen; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			return fail(status, why, 400, "control character in the request line");

	bool upgrade = false, connection = false, version = false, key = false;
	for (line = eol + 2; line < end; line = eol + 2) {
		eol = memchr(line, '\r', (size_t)(end - line));
		if (!eol || eol[1] != '\n')
			return fail(status, why, 400, "malformed header line");
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon == line)
			return fail(status, why, 400, "malformed header line");
		size_t nlen = (size_t)(colon - line);
		const char *v = colon + 1, *vend = eol;
		while (v < vend && (*v == ' ' || *v == '\t'))
			v++;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		size_t vlen = (size_t)(vend - v);
		for (const char *c = line; c < eol; c++)
			if (*c == '\0' || *c == '\n')
				return fail(status, why, 400, "control character in a header");
#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(line, h, nlen) == 0)
		if (IS("Upgrade")) {
			upgrade = has_token(v, vlen, "websocket");
		} else if (IS("Connection")) {
			connection = has_token(v, vlen, "upgrade");
		} else if (IS("Sec-WebSocket-Version")) {
			version = vlen == 2 && memcmp(v, "13", 2) == 0;
			if (!version)
				return fail(status, why, 426, "unsupported WebSocket version (13 only)");
		} else if (IS("Sec-WebSocket-Key")) {
			if (!copy_field(req->key, sizeof(req->key), v, vlen))
				return fail(status, why, 400, "Sec-WebSocket-Key too long");
			key = true;
		} else if (IS("Sec-WebSocket-Protocol")) {
			size_t have = strlen(req->protocols);
			/* Repeated headers are one comma-separated list. */
			if (have + vlen + 2 >= sizeof(req->protocols))
				return fail(status, why, 400, "Sec-WebSocket-Protocol too long");
			if (have)
				strcat(req->protocols, ",");
			strncat(req->protocols, v, vlen);
		} else if (IS("Origin")) {
			if (!copy_field(req->origin, sizeof(req->origin), v, vlen))
				return fail(status, why, 400, "Origin too long");
			req->has_origin = true;
		} else if (IS("Host")) {
			if (!copy_field(req->host, sizeof(req->host), v, vlen))
				return fail(status, why, 400, "Host too long");
		}
#undef IS
	}
	if (!upgrade || !connection)
		return fail(status, why, 426, "this port speaks WebSocket only: send an upgrade request");
	if (!version)
		return fail(status, why, 426, "missing Sec-WebSocket-Version");
	/* A key is 16 random bytes in base64: 24 characters ending in "==". */
	if (!key || strlen(req->key) != 24 || strcmp(req->key + 22, "==") != 0)
		return fail(status, why, 400, "missing or malformed Sec-WebSocket-Key");
	for (size_t i = 0; i < 22; i++)
		if (!isalnum((unsigned char)req->key[i]) && req->key[i] != '+' && req->key[i] != '/')
			return fail(status, why, 400, "missing or malformed Sec-WebSocket-Key");
	return WS_HS_OK;
}

void ws_accept_value(const char *key, char out[29])
{
	unsigned char digest[SHA_DIGEST_LENGTH];
	char joined[WS_KEY_MAX + sizeof(WS_GUID)];
	size_t klen = strnlen(key, WS_KEY_MAX - 1);
	memcpy(joined, key, klen);
	memcpy(joined + klen, WS_GUID, sizeof(WS_GUID));
	SHA1((const unsigned char *)joined, klen + sizeof(WS_GUID) - 1, digest);
	EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

const char *ws_pick_protocol(const char *offered, const char *const *supported)
{
	size_t len = strlen(offered);
	for (size_t i = 0; i < len;) {
		while (i < len && (offered[i] == ' ' || offered[i] == ','))
			i++;
		size_t start = i;
		while (i < len && offered[i] != ',' && offered[i] != ' ')
			i++;
		for (size_t s = 0; supported[s]; s++)
			if (strlen(supported[s]) == i - start &&
			    strncmp(offered + start, supported[s], i - start) == 0)
				return supported[s];
	}
	return NULL;
}
