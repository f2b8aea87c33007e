#include "config.h"
#include "protocols/stomp/codec.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

static const struct stomp_limits lim_default = {
	.max_frame_size = 4096,
	.max_headers = 32,
	.max_header_length = 1024,
};

/* Decode (buf, len) with everything the test may want to inspect. */
struct result {
	enum stomp_decode_status st;
	struct stomp_frame *f;
	size_t consumed;
	size_t need;
	size_t scanned; /* what stomp_decode() left in it */
	const char *err;
};

/* Decodes with `scanned` as the hint of an earlier call. */
static struct result decode_from(const void *buf, size_t len, enum stomp_version v,
				 const struct stomp_limits *lim, size_t scanned)
{
	struct result r;
	r.scanned = scanned;
	r.st = stomp_decode(buf, len, v, lim, &r.f, &r.consumed, &r.need, &r.scanned, &r.err);
	return r;
}

static struct result decode_lim(const void *buf, size_t len, enum stomp_version v,
				const struct stomp_limits *lim)
{
	return decode_from(buf, len, v, lim, 0);
}

static struct result decode(const void *buf, size_t len, enum stomp_version v)
{
	return decode_lim(buf, len, v, &lim_default);
}

/* String literals may hold NULs, so the length comes from sizeof. */
#define LIT(s) (s), (sizeof(s) - 1)

/* Expect an error with exactly `want` as the message. */
static void expect_error(const void *buf, size_t len, enum stomp_version v,
			 const struct stomp_limits *lim, const char *want, const char *what)
{
	struct result r = decode_lim(buf, len, v, lim);
	ok(r.st == STOMP_DECODE_ERROR && r.f == NULL && r.consumed == 0, "%s: error", what);
	is_str(r.err, want, "%s: message", what);
	stomp_frame_free(r.f);
}

static void test_commands(void)
{
	for (int c = STOMP_CMD_CONNECT; c <= STOMP_CMD_ERROR; c++) {
		const char *name = stomp_command_name((enum stomp_command)c);
		char in[64];
		int n = snprintf(in, sizeof(in), "%s\n\n", name);
		in[n++] = '\0';
		struct result r = decode(in, (size_t)n, STOMP_V12);
		ok(r.st == STOMP_DECODE_FRAME && r.f && r.f->command == (enum stomp_command)c &&
			   r.consumed == (size_t)n && r.f->nheaders == 0 && r.f->body &&
			   r.f->body_len == 0 && r.f->body[0] == '\0',
		   "decode %s", name);
		stomp_frame_free(r.f);

		struct buf b = BUF_INIT;
		ok(stomp_encode_command(&b, (enum stomp_command)c) == 0 && b.len == strlen(name) + 1 &&
			   memcmp(b.data, name, b.len - 1) == 0 && b.data[b.len - 1] == '\n',
		   "encode %s", name);
		buf_free(&b);
	}
	is_str(stomp_command_name(STOMP_CMD_UNKNOWN), "UNKNOWN", "name of UNKNOWN");
	is_str(stomp_command_name((enum stomp_command)99), "UNKNOWN", "name out of range");
	struct buf b = BUF_INIT;
	ok(stomp_encode_command(&b, STOMP_CMD_UNKNOWN) < 0 && b.len == 0, "encode UNKNOWN fails");
	ok(stomp_encode_command(&b, (enum stomp_command)99) < 0 && b.len == 0,
	   "encode out of range fails");
	buf_free(&b);
}

static void test_bad_commands(void)
{
	const struct stomp_limits *l = &lim_default;
	expect_error(LIT("send\n\n\0"), STOMP_V12, l, "unknown command", "lowercase command");
	expect_error(LIT("Send\n\n\0"), STOMP_V12, l, "unknown command", "mixed-case command");
	expect_error(LIT("SENDX\n\n\0"), STOMP_V12, l, "unknown command", "command with suffix");
	expect_error(LIT("SEND \n\n\0"), STOMP_V12, l, "unknown command", "trailing space");
	expect_error(LIT(" SEND\n\n\0"), STOMP_V12, l, "unknown command", "leading space");
	expect_error(LIT("FOO\n\n\0"), STOMP_V10, l, "unknown command", "FOO");
	expect_error(LIT("\rSEND\n\n\0"), STOMP_V12, l, "unknown command", "lone CR first");
	expect_error(LIT("SEND\r\r\n\n\0"), STOMP_V12, l, "unknown command", "CR CR LF");
	expect_error(LIT("AAAAAAAAAAAAAAAAAAAA"), STOMP_V12, l, "unknown command",
		     "long command line without LF rejected early");
	expect_error(LIT("UNSUBSCRIBEX"), STOMP_V12, l, "unknown command",
		     "12 bytes without LF or CR rejected early");
	expect_error(LIT("SE\0"), STOMP_V12, l, "NUL byte in frame headers", "NUL in command");

	struct result r = decode(LIT("UNSUBSCRIBE\r"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 13, "UNSUBSCRIBE CR needs more");
	r = decode(LIT("SEN"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 4 && r.consumed == 0,
	   "partial command needs len+1");
}

static void test_crlf(void)
{
	struct result r = decode(LIT("SEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nhello\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->command == STOMP_CMD_SEND && r.f->nheaders == 2,
	   "CRLF frame decodes");
	if (r.st == STOMP_DECODE_FRAME) {
		is_str(stomp_frame_get(r.f, "destination"), "/queue/a", "CRLF: CR not in value");
		is_str((char *)r.f->body, "hello", "CRLF: body");
		ok(r.f->headers[0].value_len == 8, "CRLF: value_len");
	}
	stomp_frame_free(r.f);

	/* Mixed LF and CRLF lines are allowed by the grammar. */
	r = decode(LIT("SEND\ndestination:/q\r\n\nb\0"), STOMP_V11);
	ok(r.st == STOMP_DECODE_FRAME && r.f->nheaders == 1 && r.f->body_len == 1,
	   "mixed EOLs decode");
	stomp_frame_free(r.f);

	/* A CR in the middle of a 1.0 value is a plain byte. */
	r = decode(LIT("SEND\na:b\rc\n\n\0"), STOMP_V10);
	ok(r.st == STOMP_DECODE_FRAME && strcmp(stomp_frame_get(r.f, "a"), "b\rc") == 0,
	   "inner CR kept in 1.0 value");
	stomp_frame_free(r.f);
}

static void test_heartbeats(void)
{
	struct result r = decode(LIT("\n"), STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 1 && !r.f, "LF is a heart-beat");
	r = decode(LIT("\r\n"), STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 2, "CRLF is a heart-beat");
	r = decode(LIT("\n\r\n\n\r\nSEND\n\n\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 6, "EOLs before a frame consumed first");
	r = decode(LIT("\n\r"), STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 1, "LF then half CRLF: LF only");
	r = decode(LIT("\r"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 2 && r.consumed == 0, "lone CR needs more");
	r = decode("", 0, STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 1, "empty buffer needs 1");
	r = decode(NULL, 0, STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 1, "NULL empty buffer needs 1");
}

/* Every proper prefix must ask for more (and never for less than it has);
 * the whole must give the same frame as a one-shot decode, also when each
 * decode resumes the search of the one before, as a session's do. */
static void check_prefixes(const char *in, size_t n, enum stomp_version v, const char *what)
{
	int bad = 0;
	size_t hint = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *copy = malloc(i ? i : 1); /* exact size: ASan sees over-reads */
		memcpy(copy, in, i);
		struct result r = decode(copy, i, v);
		struct result resumed = decode_from(copy, i, v, &lim_default, hint);
		hint = resumed.scanned;
		if (r.st != STOMP_DECODE_NEED_MORE || r.consumed || r.need <= i || r.need > n ||
		    resumed.st != r.st || resumed.need != r.need || resumed.scanned > i) {
			printf("# prefix %zu: status %d need %zu\n", i, r.st, r.need);
			bad++;
		}
		stomp_frame_free(r.f);
		stomp_frame_free(resumed.f);
		free(copy);
	}
	ok(bad == 0, "%s: every prefix needs more", what);

	uint8_t *copy = malloc(n);
	memcpy(copy, in, n);
	struct result r = decode_from(copy, n, v, &lim_default, hint);
	free(copy);
	ok(r.scanned == 0, "%s: the search ends with the frame", what);
	ok(r.st == STOMP_DECODE_FRAME && r.consumed == n, "%s: whole frame decodes", what);
	if (r.st == STOMP_DECODE_FRAME) {
		is_str(stomp_frame_get(r.f, "destination"), "/queue/a:b", "%s: destination", what);
		ok((r.f->body_len == 4 && memcmp(r.f->body, "ab\0c", 5) == 0) ||
			   (r.f->body_len == 3 && memcmp(r.f->body, "abc", 4) == 0),
		   "%s: body", what);
	}
	stomp_frame_free(r.f);
}

static void test_partial(void)
{
	static const char f1[] = "SEND\ndestination:/queue/a\\cb\ncontent-length:4\n\nab\0c\0";
	check_prefixes(f1, sizeof(f1) - 1, STOMP_V12, "1.2 content-length");
	static const char f2[] = "SEND\r\ndestination:/queue/a:b\r\nx:\r\n\r\nabc\0";
	check_prefixes(f2, sizeof(f2) - 1, STOMP_V10, "1.0 CRLF no content-length");

	/* Once content-length is known, need jumps straight to the end. */
	struct result r = decode(LIT("SEND\ncontent-length:10\n\nab"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 24 + 10 + 1,
	   "need = head + content-length + 1");
}

static void test_body(void)
{
	struct result r = decode(LIT("SEND\ncontent-length:5\n\na\0b\0c\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 5 && memcmp(r.f->body, "a\0b\0c", 5) == 0 &&
		   r.f->body[5] == '\0',
	   "NULs inside a content-length body");
	stomp_frame_free(r.f);

	r = decode(LIT("SEND\ncontent-length:0\n\n\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body && r.f->body_len == 0, "content-length 0");
	stomp_frame_free(r.f);

	r = decode(LIT("SEND\ncontent-length:007\n\n1234567\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 7, "leading zeros are decimal");
	stomp_frame_free(r.f);

	/* The body may be taken; freeing the frame then leaves it alone. */
	r = decode(LIT("SEND\n\nsteal me\0"), STOMP_V12);
	uint8_t *body = r.f ? r.f->body : NULL;
	if (r.f)
		r.f->body = NULL;
	stomp_frame_free(r.f);
	is_str((char *)body, "steal me", "body can be stolen");
	free(body);

	const struct stomp_limits *l = &lim_default;
	expect_error(LIT("SEND\ncontent-length:3\n\nabcd\0"), STOMP_V12, l,
		     "frame not terminated by NUL", "body longer than content-length");
	expect_error(LIT("SEND\ncontent-length:3\n\nab\0cd"), STOMP_V12, l,
		     "frame not terminated by NUL", "NUL inside the body does not end it");
	expect_error(LIT("SEND\ncontent-length:3\n\nabc\n"), STOMP_V12, l,
		     "frame not terminated by NUL", "EOL instead of NUL");

	static const char *const bad[] = { "abc", "-1", "99999999999999999999999", " 5", "5 ",
					   "", "+5", "0x5", "5a", "1.0", "\\c5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char in[128];
		int n = snprintf(in, sizeof(in), "SEND\ncontent-length:%s\n\nabcde", bad[i]);
		in[n++] = '\0';
		char what[64];
		snprintf(what, sizeof(what), "content-length '%s'", bad[i]);
		/* 1.0 so that "\c5" reaches the number parser raw. */
		expect_error(in, (size_t)n, STOMP_V10, l, "invalid content-length", what);
	}

	/* Over the limit: refused before any of the body arrives. */
	expect_error(LIT("SEND\ncontent-length:100000\n\n"), STOMP_V12, l, "frame too large",
		     "content-length over the frame limit");
	expect_error(LIT("SEND\ncontent-length:4096\n"), STOMP_V12, l, "frame too large",
		     "content-length equal to the frame limit, headers unfinished");
	expect_error(LIT("SEND\ncontent-length:4090\n\n"), STOMP_V12, l, "frame too large",
		     "content-length fits but head + body + NUL does not");
	r = decode(LIT("SEND\ncontent-length:4069\n\n"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 4096, "frame of exactly the limit is fine");

	/* Only the first content-length counts, a later bad one is just a header. */
	r = decode(LIT("SEND\ncontent-length:3\ncontent-length:xyz\n\na\0c\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 3, "first content-length wins");
	stomp_frame_free(r.f);

	/* Headers are case-sensitive: this is not a content-length. */
	r = decode(LIT("SEND\nContent-Length:1\n\nabc\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 3, "Content-Length is another header");
	stomp_frame_free(r.f);
}

static void test_headers(void)
{
	struct result r = decode(LIT("SEND\na:1\nb:x:y:z\na:2\nempty:\n\n\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->nheaders == 4, "four headers");
	if (r.st == STOMP_DECODE_FRAME) {
		is_str(stomp_frame_get(r.f, "a"), "1", "repeated header: first wins");
		is_str(r.f->headers[2].value, "2", "repeated header kept in order");
		is_str(stomp_frame_get(r.f, "b"), "x:y:z", "split on the first colon");
		is_str(stomp_frame_get(r.f, "empty"), "", "empty value");
		ok(r.f->headers[3].value_len == 0, "empty value_len");
		ok(stomp_frame_get(r.f, "missing") == NULL, "missing header is NULL");
		ok(stomp_frame_get(r.f, "A") == NULL, "header names are case-sensitive");
	}
	stomp_frame_free(r.f);
	ok(stomp_frame_get(NULL, "a") == NULL, "get on NULL frame");

	const struct stomp_limits *l = &lim_default;
	expect_error(LIT("SEND\nnocolon\n\n\0"), STOMP_V12, l, "header line without ':'",
		     "missing colon");
	expect_error(LIT("SEND\nnocolon\n\n\0"), STOMP_V10, l, "header line without ':'",
		     "missing colon 1.0");
	expect_error(LIT("SEND\n:value\n\n\0"), STOMP_V12, l, "empty header name", "empty name");
	expect_error(LIT("SEND\n:\n\n\0"), STOMP_V10, l, "empty header name", "bare colon");
	expect_error(LIT("SEND\n \n\n\0"), STOMP_V10, l, "header line without ':'",
		     "space-only line is not blank");
	expect_error(LIT("SEND\r\n\r\r\n\0"), STOMP_V10, l, "header line without ':'",
		     "CR CR LF is not a blank line");
	expect_error(LIT("SEND\na:b\0\n\n\0"), STOMP_V12, l, "NUL byte in frame headers",
		     "NUL in a value");
	expect_error(LIT("SEND\n\0"), STOMP_V12, l, "NUL byte in frame headers",
		     "NUL where the blank line should be");
	expect_error(LIT("SEND\na:b\n\0"), STOMP_V12, l, "NUL byte in frame headers",
		     "frame ends inside the headers");
}

static void test_escapes(void)
{
	struct result r = decode(LIT("MESSAGE\na\\cb\\\\:x\\ny\\\\z\\cw\n\n\0"), STOMP_V11);
	ok(r.st == STOMP_DECODE_FRAME && r.f->nheaders == 1, "1.1 escapes decode");
	if (r.st == STOMP_DECODE_FRAME) {
		is_str(r.f->headers[0].name, "a:b\\", "1.1 name unescaped");
		is_str(r.f->headers[0].value, "x\ny\\z:w", "1.1 value unescaped");
		ok(r.f->headers[0].value_len == 7, "1.1 value_len after unescape");
	}
	stomp_frame_free(r.f);

	r = decode(LIT("SEND\nk:a\\rb\\n\n\n\0"), STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && strcmp(stomp_frame_get(r.f, "k"), "a\rb\n") == 0,
	   "1.2 \\r unescaped");
	stomp_frame_free(r.f);

	r = decode(LIT("SEND\nk:a\\nb\\t\n\n\0"), STOMP_V10);
	ok(r.st == STOMP_DECODE_FRAME && strcmp(stomp_frame_get(r.f, "k"), "a\\nb\\t") == 0,
	   "1.0: no unescaping");
	stomp_frame_free(r.f);
	r = decode(LIT("SEND\nk:a\\nb\\\n\n\0"), STOMP_V_NONE);
	ok(r.st == STOMP_DECODE_FRAME && strcmp(stomp_frame_get(r.f, "k"), "a\\nb\\") == 0,
	   "unnegotiated: no unescaping");
	stomp_frame_free(r.f);

	static const enum stomp_command raw[] = { STOMP_CMD_CONNECT, STOMP_CMD_STOMP,
						  STOMP_CMD_CONNECTED };
	for (size_t i = 0; i < 3; i++) {
		char in[128];
		int n = snprintf(in, sizeof(in), "%s\nlogin:a\\tb\\n\n\n",
				 stomp_command_name(raw[i]));
		in[n++] = '\0';
		r = decode(in, (size_t)n, STOMP_V12);
		ok(r.st == STOMP_DECODE_FRAME &&
			   strcmp(stomp_frame_get(r.f, "login"), "a\\tb\\n") == 0,
		   "%s is never unescaped", stomp_command_name(raw[i]));
		stomp_frame_free(r.f);
	}

	const struct stomp_limits *l = &lim_default;
	const char *e = "invalid header escape";
	expect_error(LIT("SEND\nk:a\\tb\n\n\0"), STOMP_V12, l, e, "\\t in 1.2");
	expect_error(LIT("SEND\nk:a\\rb\n\n\0"), STOMP_V11, l, e, "\\r in 1.1");
	expect_error(LIT("SEND\nk:ab\\\n\n\0"), STOMP_V12, l, e, "trailing backslash in value");
	expect_error(LIT("SEND\nk\\:v\n\n\0"), STOMP_V11, l, e, "trailing backslash in name");
	expect_error(LIT("SEND\nk\\x:v\n\n\0"), STOMP_V11, l, e, "bad escape in name");
	expect_error(LIT("SEND\nk:\\C\n\n\0"), STOMP_V12, l, e, "escapes are case-sensitive");
	expect_error(LIT("SEND\r\nk:ab\\\r\n\r\n\0"), STOMP_V12, l, e,
		     "backslash before CRLF is not an escape");
}

static void test_limits(void)
{
	struct stomp_limits l = { .max_frame_size = 64, .max_headers = 2, .max_header_length = 8 };
	struct result r;

	/* Header line length: "aaaa:bbb" is exactly 8. */
	r = decode_lim(LIT("SEND\naaaa:bbb\n\n\0"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_FRAME, "header line at the length limit");
	stomp_frame_free(r.f);
	r = decode_lim(LIT("SEND\r\naaaa:bbb\r\n\r\n\0"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_FRAME, "CRLF does not count toward the line length");
	stomp_frame_free(r.f);
	expect_error(LIT("SEND\naaaa:bbbb\n\n\0"), STOMP_V12, &l, "header line too long",
		     "header line one over");
	expect_error(LIT("SEND\naaaa:bbbbbbbbbbbbbbbbbbbb"), STOMP_V12, &l,
		     "header line too long", "long line without LF rejected early");
	expect_error(LIT("SEND\naaaa:bbbb"), STOMP_V12, &l, "header line too long",
		     "limit+1 bytes without LF rejected early");
	r = decode_lim(LIT("SEND\naaaa:bbb\r"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_NEED_MORE, "limit bytes then CR may still be CRLF");
	r = decode_lim(LIT("SEND\naaaa:bbb"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 14, "limit bytes without LF need more");

	/* Header count. */
	r = decode_lim(LIT("SEND\na:1\nb:2\n\n\0"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_FRAME && r.f->nheaders == 2, "headers at the count limit");
	stomp_frame_free(r.f);
	expect_error(LIT("SEND\na:1\nb:2\nc:3\n\n\0"), STOMP_V12, &l, "too many headers",
		     "one header over");
	expect_error(LIT("SEND\na:1\nb:2\nc"), STOMP_V12, &l, "too many headers",
		     "extra header rejected before its line ends");
	expect_error(LIT("SEND\na:1\nb:2\n\rx"), STOMP_V12, &l, "too many headers",
		     "CR not followed by LF after the last header");
	r = decode_lim(LIT("SEND\na:1\nb:2\n\r"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_NEED_MORE, "CR after the last header may be the blank line");
	r = decode_lim(LIT("SEND\na:1\nb:2\n"), STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_NEED_MORE, "count limit reached, blank line pending");

	/* Frame size: 64 bytes from the command through the NUL. */
	char in[128];
	memcpy(in, "SEND\n\n", 6);
	memset(in + 6, 'x', 57);
	in[63] = '\0';
	r = decode_lim(in, 64, STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_FRAME && r.consumed == 64, "frame of exactly the size limit");
	stomp_frame_free(r.f);
	in[63] = 'x';
	in[64] = '\0';
	expect_error(in, 65, STOMP_V12, &l, "frame too large", "frame one byte over");
	expect_error(in, 64, STOMP_V12, &l, "frame too large",
		     "limit bytes buffered without a NUL rejected early");
	r = decode_lim(in, 63, STOMP_V12, &l);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.need == 64, "limit-1 bytes without NUL need more");

	/* Many short header lines reach the frame limit before a count limit. */
	struct stomp_limits l2 = { .max_frame_size = 32, .max_headers = 100,
				   .max_header_length = 100 };
	expect_error(LIT("SEND\na:1\na:1\na:1\na:1\na:1\na:1\na:1"), STOMP_V12, &l2,
		     "frame too large", "unfinished head over the frame limit");
	expect_error(LIT("SEND\na:1\na:1\na:1\na:1\na:1\na:1\na:1\n\n\0"), STOMP_V12, &l2,
		     "frame too large", "complete head over the frame limit");
	expect_error(LIT("SEND\ncontent-length:0\na:1\na:1\na:1\n\n\0"), STOMP_V12, &l2,
		     "frame too large", "content-length frame whose head is over the limit");
}

static void test_sequences(void)
{
	static const char in[] = "SEND\ndestination:/a\n\none\0\nSEND\ncontent-length:3\n\ntwo\0\r\n";
	size_t len = sizeof(in) - 1, off = 0;
	struct result r = decode(in, len, STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.consumed == 25 && strcmp((char *)r.f->body, "one") == 0,
	   "first of two frames, trailing EOL not consumed");
	stomp_frame_free(r.f);
	off += r.consumed;
	r = decode(in + off, len - off, STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 1, "EOL between frames");
	off += r.consumed;
	r = decode(in + off, len - off, STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 3 && memcmp(r.f->body, "two", 3) == 0,
	   "second frame");
	stomp_frame_free(r.f);
	off += r.consumed;
	r = decode(in + off, len - off, STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.consumed == 2 && off + 2 == len, "trailing CRLF");

	/* Back to back without EOLs between them. */
	static const char bb[] = "ACK\nid:1\n\n\0NACK\nid:2\n\n\0";
	r = decode(bb, sizeof(bb) - 1, STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->command == STOMP_CMD_ACK && r.consumed == 11,
	   "back to back: ACK");
	stomp_frame_free(r.f);
	r = decode(bb + 11, sizeof(bb) - 1 - 11, STOMP_V12);
	ok(r.st == STOMP_DECODE_FRAME && r.f->command == STOMP_CMD_NACK &&
		   strcmp(stomp_frame_get(r.f, "id"), "2") == 0,
	   "back to back: NACK");
	stomp_frame_free(r.f);
}

static void expect_encoded(enum stomp_version v, enum stomp_command cmd, const char *name,
			   const char *value, size_t vlen, const char *want, const char *what)
{
	struct buf b = BUF_INIT;
	int rc = stomp_encode_header(&b, v, cmd, name, value, vlen);
	ok(rc == 0, "%s: encodes", what);
	is_str(rc == 0 ? b.data : NULL, want, "%s: bytes", what);
	buf_free(&b);
}

static void expect_refused(enum stomp_version v, enum stomp_command cmd, const char *name,
			   const char *value, size_t vlen, const char *what)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "keep");
	ok(stomp_encode_header(&b, v, cmd, name, value, vlen) < 0 && b.len == 4 &&
		   strcmp(b.data, "keep") == 0,
	   "%s: refused, buffer unchanged", what);
	buf_free(&b);
}

static void test_encode(void)
{
	expect_encoded(STOMP_V12, STOMP_CMD_MESSAGE, "a:b", LIT("x\ny:z\\w\rq"),
		       "a\\cb:x\\ny\\cz\\\\w\\rq\n", "1.2 escapes");
	expect_encoded(STOMP_V11, STOMP_CMD_MESSAGE, "a:b", LIT("x\ny:z\\w\rq"),
		       "a\\cb:x\\ny\\cz\\\\w\rq\n", "1.1 leaves CR raw");
	expect_encoded(STOMP_V10, STOMP_CMD_MESSAGE, "dest", LIT("a:b\\c"), "dest:a:b\\c\n",
		       "1.0 raw");
	expect_encoded(STOMP_V_NONE, STOMP_CMD_ERROR, "message", LIT("bad\\n"),
		       "message:bad\\n\n", "unnegotiated raw");
	expect_encoded(STOMP_V12, STOMP_CMD_CONNECTED, "server", LIT("wharf/1:0\\"),
		       "server:wharf/1:0\\\n", "CONNECTED never escaped");
	expect_encoded(STOMP_V12, STOMP_CMD_CONNECT, "login", LIT("a:b"), "login:a:b\n",
		       "CONNECT never escaped");
	expect_encoded(STOMP_V12, STOMP_CMD_MESSAGE, "k", "abcdef", 3, "k:abc\n",
		       "value_len bounds the value");
	expect_encoded(STOMP_V12, STOMP_CMD_MESSAGE, "k", "", 0, "k:\n", "empty value");

	expect_refused(STOMP_V12, STOMP_CMD_MESSAGE, "k", LIT("a\0b"), "NUL in value");
	expect_refused(STOMP_V10, STOMP_CMD_MESSAGE, "k", LIT("a\nb"), "LF in a 1.0 value");
	expect_refused(STOMP_V12, STOMP_CMD_CONNECTED, "k", LIT("a\nb"), "LF in CONNECTED");
	expect_refused(STOMP_V10, STOMP_CMD_MESSAGE, "a:b", LIT("v"), "colon in a 1.0 name");
	expect_refused(STOMP_V10, STOMP_CMD_MESSAGE, "a\nb", LIT("v"), "LF in a 1.0 name");
	expect_refused(STOMP_V11, STOMP_CMD_MESSAGE, "k", LIT("ab\r"), "trailing CR in 1.1");
	expect_refused(STOMP_V10, STOMP_CMD_MESSAGE, "k", LIT("ab\r"), "trailing CR in 1.0");
	expect_refused(STOMP_V12, STOMP_CMD_MESSAGE, "", LIT("v"), "empty name");

	struct buf b = BUF_INIT;
	ok(stomp_encode_end_headers(&b) == 0 && b.len == 1 && b.data[0] == '\n', "end of headers");
	buf_free(&b);

	/* Whole frame, encoded then decoded, for each escaping version. */
	static const enum stomp_version vs[] = { STOMP_V10, STOMP_V11, STOMP_V12 };
	for (size_t i = 0; i < 3; i++) {
		enum stomp_version v = vs[i];
		const char *val = v == STOMP_V10 ? "a:b\\n\rc" : v == STOMP_V11 ? "a:b\\\n\rc:" :
										  "\r\n:\\\\x\r";
		const char *nm = v == STOMP_V10 ? "x\\y" : "x:\n\\y";
		struct buf e = BUF_INIT;
		int rc = stomp_encode_command(&e, STOMP_CMD_MESSAGE);
		rc |= stomp_encode_header(&e, v, STOMP_CMD_MESSAGE, nm, val, strlen(val));
		rc |= stomp_encode_header(&e, v, STOMP_CMD_MESSAGE, "content-length", "2", 1);
		rc |= stomp_encode_end_headers(&e);
		rc |= buf_append(&e, "\0\0\0", 3);
		struct result r = decode(e.data, e.len, v);
		ok(rc == 0 && r.st == STOMP_DECODE_FRAME && r.consumed == e.len &&
			   r.f->nheaders == 2 && strcmp(r.f->headers[0].name, nm) == 0 &&
			   strcmp(r.f->headers[0].value, val) == 0 &&
			   r.f->headers[0].value_len == strlen(val) && r.f->body_len == 2,
		   "round trip in %d", (int)v);
		stomp_frame_free(r.f);
		buf_free(&e);
	}
}

/* The search for the NUL resumes where the last NEED_MORE left it. */
static void test_resume(void)
{
	struct result r = decode(LIT("SEND\n\nabc"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.scanned == 9, "body without NUL: searched to the end");
	r = decode_from(LIT("SEND\n\nabcdef\0"), STOMP_V12, &lim_default, 9);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 6 && r.scanned == 0,
	   "more bytes: the frame, the search done");
	stomp_frame_free(r.f);
	/* Bytes before the hint are not searched again: it is trusted. */
	r = decode_from(LIT("SEND\n\nab\0cd\0"), STOMP_V12, &lim_default, 10);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 5 && r.consumed == 12,
	   "the hint is where the search starts");
	stomp_frame_free(r.f);
	r = decode_from(LIT("SEND\n\nab\0"), STOMP_V12, &lim_default, 100);
	ok(r.st == STOMP_DECODE_FRAME && r.f->body_len == 2, "a hint past the buffer is ignored");
	stomp_frame_free(r.f);
	r = decode_from(LIT("SEND\n"), STOMP_V12, &lim_default, 3);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.scanned == 0, "a hint inside the head is ignored");
	r = decode(LIT("SEND\ncontent-length:5\n\nab"), STOMP_V12);
	ok(r.st == STOMP_DECODE_NEED_MORE && r.scanned == 0, "content-length: no search to keep");
	r = decode(LIT("\n"), STOMP_V12);
	ok(r.st == STOMP_DECODE_HEARTBEAT && r.scanned == 0, "heart-beat: no search to keep");
}

int main(void)
{
	test_commands();
	test_bad_commands();
	test_crlf();
	test_heartbeats();
	test_partial();
	test_body();
	test_headers();
	test_escapes();
	test_limits();
	test_sequences();
	test_resume();
	test_encode();
	return tap_done();
}
