#include "config.h"
#include "protocols/stomp/codec.h"

#include <stdlib.h>
#include <string.h>

static const char *const command_names[] = {
	[STOMP_CMD_UNKNOWN] = "UNKNOWN",
	[STOMP_CMD_CONNECT] = "CONNECT",
	[STOMP_CMD_STOMP] = "STOMP",
	[STOMP_CMD_SEND] = "SEND",
	[STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
	[STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[STOMP_CMD_ACK] = "ACK",
	[STOMP_CMD_NACK] = "NACK",
	[STOMP_CMD_BEGIN] = "BEGIN",
	[STOMP_CMD_COMMIT] = "COMMIT",
	[STOMP_CMD_ABORT] = "ABORT",
	[STOMP_CMD_DISCONNECT] = "DISCONNECT",
	[STOMP_CMD_CONNECTED] = "CONNECTED",
	[STOMP_CMD_MESSAGE] = "MESSAGE",
	[STOMP_CMD_RECEIPT] = "RECEIPT",
	[STOMP_CMD_ERROR] = "ERROR",
};

#define NCOMMANDS (sizeof(command_names) / sizeof(command_names[0]))

/* "UNSUBSCRIBE" plus CR LF: no valid command line is longer, so a peer that
 * sends more without a LF is rejected before we buffer it. */
#define MAX_COMMAND_LINE 13

#define CONTENT_LENGTH "content-length"

/* The frame, its header array and every header string in one allocation, so
 * a decoded frame costs two mallocs (this and the body). */
struct frame_block {
	struct stomp_frame f;
	struct stomp_header h[];
};

/* What the first pass learns about the head (command line and headers). */
struct head {
	enum stomp_command cmd;
	bool unescape;
	size_t nheaders;
	size_t strbytes; /* unescaped names and values, NULs included */
	size_t len;      /* bytes from the command through the blank line */
	bool has_clen;
	size_t clen;
};

enum scan { SCAN_OK, SCAN_MORE, SCAN_ERROR };

const char *stomp_command_name(enum stomp_command cmd)
{
	if ((size_t)cmd >= NCOMMANDS)
		return command_names[STOMP_CMD_UNKNOWN];
	return command_names[cmd];
}

static enum stomp_command command_lookup(const uint8_t *s, size_t n)
{
	for (size_t i = 1; i < NCOMMANDS; i++)
		if (strlen(command_names[i]) == n && memcmp(command_names[i], s, n) == 0)
			return (enum stomp_command)i;
	return STOMP_CMD_UNKNOWN;
}

/* The spec leaves CONNECT, STOMP and CONNECTED unescaped so that a 1.0
 * server can still read a 1.1+ client's handshake (and vice versa). */
static bool uses_escapes(enum stomp_version v, enum stomp_command cmd)
{
	if (v != STOMP_V11 && v != STOMP_V12)
		return false;
	return cmd != STOMP_CMD_CONNECT && cmd != STOMP_CMD_STOMP && cmd != STOMP_CMD_CONNECTED;
}

/* Length of s[0..n) once unescaped, or (size_t)-1 for a bad escape. */
static size_t unescaped_len(const uint8_t *s, size_t n, enum stomp_version v)
{
	size_t out = 0;
	for (size_t i = 0; i < n; i++, out++) {
		if (s[i] != '\\')
			continue;
		if (++i == n)
			return (size_t)-1;
		if (s[i] != 'n' && s[i] != 'c' && s[i] != '\\' && !(s[i] == 'r' && v == STOMP_V12))
			return (size_t)-1;
	}
	return out;
}

/* Copy s[0..n) to dst, unescaping if asked (already validated), and
 * NUL-terminate. Returns the number of bytes written before the NUL. */
static size_t copy_str(char *dst, const uint8_t *s, size_t n, bool unescape)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = (char)s[i];
		if (unescape && c == '\\') {
			switch (s[++i]) {
			case 'n': c = '\n'; break;
			case 'c': c = ':'; break;
			case 'r': c = '\r'; break;
			default: c = '\\'; break;
			}
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return o;
}

/* Plain decimal only: a sign, a space or an overflow would let a peer make
 * us disagree with another parser about where the body ends. */
static bool parse_size(const uint8_t *s, size_t n, size_t *out)
{
	size_t v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		size_t d = (size_t)(s[i] - '0');
		if (v > ((size_t)-1 - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Find the line that starts at pos, reading at most max content bytes (the
 * EOL excluded). On SCAN_OK *clen is the content length and *next the index
 * after the LF. SCAN_MORE means no LF yet but the line may still fit;
 * SCAN_ERROR with *err set means it cannot (too long, or holds a NUL: NUL
 * ends a frame, so one inside the head means the head was never finished). */
static enum scan find_line(const uint8_t *buf, size_t len, size_t pos, size_t max,
			   const char *too_long, size_t *clen, size_t *next, const char **err)
{
	size_t avail = len - pos;
	size_t win = avail;
	if (avail > max && avail - max > 2)
		win = max + 2;
	const uint8_t *lf = memchr(buf + pos, '\n', win);
	size_t n = lf ? (size_t)(lf - (buf + pos)) : win;

	if (memchr(buf + pos, '\0', n)) {
		*err = "NUL byte in frame headers";
		return SCAN_ERROR;
	}
	if (!lf) {
		/* A trailing CR may be half of the CRLF, so it does not count. */
		size_t least = (win && buf[pos + win - 1] == '\r') ? win - 1 : win;
		if (least > max) {
			*err = too_long;
			return SCAN_ERROR;
		}
		return SCAN_MORE;
	}
	if (n > 0 && buf[pos + n - 1] == '\r')
		n--;
	if (n > max) {
		*err = too_long;
		return SCAN_ERROR;
	}
	*clen = n;
	*next = (size_t)(lf - buf) + 1;
	return SCAN_OK;
}

static enum scan check_header(const uint8_t *line, size_t n, enum stomp_version version,
			      struct head *h, const struct stomp_limits *lim, const char **err)
{
	const uint8_t *colon = memchr(line, ':', n);
	if (!colon) {
		*err = "header line without ':'";
		return SCAN_ERROR;
	}
	size_t nlen = (size_t)(colon - line), vlen = n - nlen - 1;
	const uint8_t *val = colon + 1;
	if (nlen == 0) {
		*err = "empty header name";
		return SCAN_ERROR;
	}
	size_t un = nlen, uv = vlen;
	if (h->unescape) {
		un = unescaped_len(line, nlen, version);
		uv = unescaped_len(val, vlen, version);
		if (un == (size_t)-1 || uv == (size_t)-1) {
			*err = "invalid header escape";
			return SCAN_ERROR;
		}
	}
	/* No escape can produce any byte of "content-length", so comparing
	 * the raw name is the same as comparing the unescaped one. */
	if (!h->has_clen && nlen == strlen(CONTENT_LENGTH) &&
	    memcmp(line, CONTENT_LENGTH, nlen) == 0) {
		if (!parse_size(val, vlen, &h->clen)) {
			*err = "invalid content-length";
			return SCAN_ERROR;
		}
		if (h->clen >= lim->max_frame_size) {
			*err = "frame too large";
			return SCAN_ERROR;
		}
		h->has_clen = true;
	}
	h->nheaders++;
	h->strbytes += un + uv + 2;
	return SCAN_OK;
}

/* First pass: validate the command line and headers without allocating. */
static enum scan scan_head(const uint8_t *buf, size_t len, enum stomp_version version,
			   const struct stomp_limits *lim, struct head *h, const char **err)
{
	size_t clen, pos;
	enum scan s = find_line(buf, len, 0, MAX_COMMAND_LINE - 2, "unknown command", &clen,
				&pos, err);
	if (s != SCAN_OK)
		return s;
	h->cmd = command_lookup(buf, clen);
	if (h->cmd == STOMP_CMD_UNKNOWN) {
		*err = "unknown command";
		return SCAN_ERROR;
	}
	h->unescape = uses_escapes(version, h->cmd);

	for (;;) {
		size_t next;
		s = find_line(buf, len, pos, lim->max_header_length, "header line too long", &clen,
			      &next, err);
		if (s == SCAN_ERROR)
			return s;
		if (s == SCAN_OK && clen == 0) {
			h->len = next;
			return SCAN_OK;
		}
		/* Only a blank line may follow the last allowed header; say no
		 * as soon as the line cannot be blank. */
		if (h->nheaders >= lim->max_headers && pos < len &&
		    !(s == SCAN_MORE && len - pos == 1 && buf[pos] == '\r')) {
			*err = "too many headers";
			return SCAN_ERROR;
		}
		if (s == SCAN_MORE)
			return s;
		if (check_header(buf + pos, clen, version, h, lim, err) != SCAN_OK)
			return SCAN_ERROR;
		pos = next;
	}
}

/* Second pass: the head is known good, so only allocation can fail. */
static struct stomp_frame *build_frame(const uint8_t *buf, const struct head *h,
				       const uint8_t *body, size_t body_len)
{
	size_t hdrs = h->nheaders * sizeof(struct stomp_header);
	struct frame_block *blk = malloc(offsetof(struct frame_block, h) + hdrs + h->strbytes);
	if (!blk)
		return NULL;
	struct stomp_frame *f = &blk->f;
	f->command = h->cmd;
	f->nheaders = h->nheaders;
	f->headers = blk->h;
	f->body_len = body_len;
	f->body = malloc(body_len + 1);
	if (!f->body) {
		free(blk);
		return NULL;
	}
	if (body_len)
		memcpy(f->body, body, body_len);
	f->body[body_len] = '\0';

	char *str = (char *)blk->h + hdrs;
	const uint8_t *p = (const uint8_t *)memchr(buf, '\n', h->len) + 1;
	for (size_t i = 0; i < h->nheaders; i++) {
		const uint8_t *lf = memchr(p, '\n', h->len - (size_t)(p - buf));
		size_t n = (size_t)(lf - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		const uint8_t *colon = memchr(p, ':', n);
		size_t nlen = (size_t)(colon - p);
		struct stomp_header *hd = &blk->h[i];
		hd->name = str;
		str += copy_str(str, p, nlen, h->unescape) + 1;
		hd->value = str;
		hd->value_len = copy_str(str, colon + 1, n - nlen - 1, h->unescape);
		str += hd->value_len + 1;
		p = lf + 1;
	}
	return f;
}

static enum stomp_decode_status need_more(size_t len, size_t want, const struct stomp_limits *lim,
					  size_t *need, const char **err)
{
	/* Whatever is buffered belongs to a frame that has not ended, and
	 * that frame is at least one byte (its NUL) longer. */
	if (len >= lim->max_frame_size) {
		*err = "frame too large";
		return STOMP_DECODE_ERROR;
	}
	*need = want;
	return STOMP_DECODE_NEED_MORE;
}

/* A decoded frame's body is never NULL: a frame without a body gets an
 * allocated empty string, so callers need not special-case it. */
enum stomp_decode_status stomp_decode(const uint8_t *buf, size_t len, enum stomp_version version,
				      const struct stomp_limits *lim, struct stomp_frame **out,
				      size_t *consumed, size_t *need, size_t *scanned,
				      const char **err)
{
	/* Bytes before it are known to hold no NUL; a hint past what buf
	 * holds cannot be from an earlier call on it and is ignored. */
	size_t from = *scanned <= len ? *scanned : 0;
	*scanned = 0;
	*out = NULL;
	*consumed = 0;
	*need = 0;
	*err = NULL;

	size_t eols = 0;
	while (eols < len) {
		if (buf[eols] == '\n')
			eols += 1;
		else if (buf[eols] == '\r' && eols + 1 < len && buf[eols + 1] == '\n')
			eols += 2;
		else
			break;
	}
	if (eols) {
		*consumed = eols;
		return STOMP_DECODE_HEARTBEAT;
	}
	if (len == 0 || (len == 1 && buf[0] == '\r')) {
		*need = len + 1;
		return STOMP_DECODE_NEED_MORE;
	}

	struct head h = { 0 };
	enum scan s = scan_head(buf, len, version, lim, &h, err);
	if (s == SCAN_ERROR)
		return STOMP_DECODE_ERROR;
	if (s == SCAN_MORE)
		return need_more(len, len + 1, lim, need, err);

	size_t body_len, total;
	if (h.has_clen) {
		body_len = h.clen;
		/* Checked by parts so that the sum cannot wrap. */
		if (h.len >= lim->max_frame_size || body_len > lim->max_frame_size - h.len - 1) {
			*err = "frame too large";
			return STOMP_DECODE_ERROR;
		}
		total = h.len + body_len + 1;
		if (len < total)
			return need_more(len, total, lim, need, err);
		if (buf[total - 1] != '\0') {
			*err = "frame not terminated by NUL";
			return STOMP_DECODE_ERROR;
		}
	} else {
		if (from < h.len)
			from = h.len;
		const uint8_t *nul = memchr(buf + from, '\0', len - from);
		if (!nul) {
			enum stomp_decode_status st = need_more(len, len + 1, lim, need, err);
			if (st == STOMP_DECODE_NEED_MORE)
				*scanned = len;
			return st;
		}
		body_len = (size_t)(nul - (buf + h.len));
		total = h.len + body_len + 1;
		if (total > lim->max_frame_size) {
			*err = "frame too large";
			return STOMP_DECODE_ERROR;
		}
	}

	*out = build_frame(buf, &h, buf + h.len, body_len);
	if (!*out) {
		*err = "out of memory";
		return STOMP_DECODE_ERROR;
	}
	*consumed = total;
	return STOMP_DECODE_FRAME;
}

void stomp_frame_free(struct stomp_frame *f)
{
	if (!f)
		return;
	free(f->body);
	free(f); /* the first member of its frame_block */
}

const char *stomp_frame_get(const struct stomp_frame *f, const char *name)
{
	for (size_t i = 0; f && i < f->nheaders; i++)
		if (strcmp(f->headers[i].name, name) == 0)
			return f->headers[i].value;
	return NULL;
}

int stomp_encode_command(struct buf *out, enum stomp_command cmd)
{
	if (cmd == STOMP_CMD_UNKNOWN || (size_t)cmd >= NCOMMANDS)
		return -1;
	size_t n = strlen(command_names[cmd]);
	/* Reserve first so a failure leaves the buffer untouched. */
	if (buf_reserve(out, n + 1) < 0)
		return -1;
	buf_append(out, command_names[cmd], n);
	return buf_append_char(out, '\n');
}

/* Bytes s[0..n) take once escaped, or (size_t)-1 if they cannot be written
 * so that the decoder gives them back: STOMP has no escape for NUL, raw
 * LF ends the line, a raw ':' in a name ends the name, and a trailing raw
 * CR would be taken for half of a CRLF. */
static size_t escaped_len(const char *s, size_t n, bool esc, bool esc_cr, bool is_name)
{
	size_t out = n;
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\0':
			return (size_t)-1;
		case '\n':
		case '\\':
			if (!esc && s[i] == '\n')
				return (size_t)-1;
			out += esc;
			break;
		case ':':
			if (!esc && is_name)
				return (size_t)-1;
			out += esc;
			break;
		case '\r':
			if (esc_cr)
				out++;
			else if (i == n - 1 && !is_name)
				return (size_t)-1;
			break;
		}
	}
	return out;
}

static void append_escaped(struct buf *out, const char *s, size_t n, bool esc, bool esc_cr)
{
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		if (esc) {
			switch (s[i]) {
			case '\n': rep = "\\n"; break;
			case ':': rep = "\\c"; break;
			case '\\': rep = "\\\\"; break;
			case '\r': rep = esc_cr ? "\\r" : NULL; break;
			}
		}
		if (rep) {
			memcpy(out->data + out->len, rep, 2);
			out->len += 2;
		} else {
			out->data[out->len++] = s[i];
		}
	}
}

/* CONNECT and STOMP are left unescaped along with CONNECTED, to match what
 * stomp_decode() expects of them. A raw LF in a 1.0 value would end the
 * header line early, so such values are refused rather than mangled. */
int stomp_encode_header(struct buf *out, enum stomp_version version, enum stomp_command cmd,
			const char *name, const char *value, size_t value_len)
{
	bool esc = uses_escapes(version, cmd);
	bool esc_cr = esc && version == STOMP_V12;
	size_t nlen = strlen(name);
	if (nlen == 0)
		return -1;
	size_t en = escaped_len(name, nlen, esc, esc_cr, true);
	size_t ev = escaped_len(value, value_len, esc, esc_cr, false);
	if (en == (size_t)-1 || ev == (size_t)-1)
		return -1;
	/* Reserve once so the appends below cannot fail half-way. */
	if (en > SIZE_MAX / 4 || ev > SIZE_MAX / 4 || buf_reserve(out, en + ev + 2) < 0)
		return -1;
	append_escaped(out, name, nlen, esc, esc_cr);
	out->data[out->len++] = ':';
	append_escaped(out, value, value_len, esc, esc_cr);
	out->data[out->len++] = '\n';
	out->data[out->len] = '\0';
	return 0;
}

int stomp_encode_end_headers(struct buf *out)
{
	return buf_append_char(out, '\n');
}
