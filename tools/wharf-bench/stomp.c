/* A STOMP 1.2 client: CONNECT, SEND with content-length (a receipt every K
 * messages bounds what is unconfirmed), SUBSCRIBE to /queue/ or /topic/ with
 * ack auto, client or client-individual and a prefetch, ACK, DISCONNECT with
 * a receipt at the end. Frames are parsed in place from the read buffer. */
#include "config.h"
#include "wb.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stomp_state {
	char *head;             /* publishers: SEND and its fixed headers */
	size_t head_len;
	uint64_t receipted;     /* messages confirmed by receipts */
	char last_ack[128];     /* ack client: the newest ack id of this read */
	size_t last_ack_len;
};

static struct stomp_state *st(const struct wb_client *c)
{
	return c->ps;
}

struct hval {
	const char *p;
	size_t n;
};

struct frame {
	struct hval cmd, content_length, ack, message_id, receipt_id, message, redelivered;
	const uint8_t *body;
	size_t body_len;
};

static const char *ack_name(enum wb_ack a)
{
	return a == WB_ACK_AUTO ? "auto" : a == WB_ACK_CLIENT ? "client" : "client-individual";
}

static uint8_t *out(struct wb_client *c, size_t n)
{
	if (!c->conn.open)
		return NULL;
	uint8_t *p = wb_conn_reserve(&c->conn, n);
	if (!p)
		wb_fail(c, "out of memory");
	return p;
}

static void send_text(struct wb_client *c, const char *text, size_t n)
{
	/* the text includes its NUL terminator */
	uint8_t *p = out(c, n);
	if (!p)
		return;
	memcpy(p, text, n);
	wb_conn_commit(&c->conn, n);
}

static void send_fmt(struct wb_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_fmt(struct wb_client *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf) {
		wb_fail(c, "frame too long");
		return;
	}
	send_text(c, buf, (size_t)n + 1);
}

static int stomp_init(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	struct stomp_state *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	c->ps = s;
	if (c->role != WB_PUB)
		return 0;
	c->confirms = o->window > 0;
	char head[512];
	int n = snprintf(head, sizeof head, "SEND\ndestination:/%s/%s\ncontent-length:%zu\n%s",
			 o->kind == WB_QUEUE ? "queue" : "topic", o->dest, o->size,
			 o->persistent ? "persistent:true\n" : "");
	if (n < 0 || (size_t)n >= sizeof head || !(s->head = strdup(head)))
		return -1;
	s->head_len = (size_t)n;
	return 0;
}

static void stomp_free(struct wb_client *c)
{
	struct stomp_state *s = st(c);
	if (s)
		free(s->head);
	free(s);
	c->ps = NULL;
}

static void stomp_start(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	send_fmt(c, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n%s%s%s%s%s%s\n",
		 o->has_user ? "login:" : "", o->has_user ? o->user : "", o->has_user ? "\n" : "",
		 o->has_pass ? "passcode:" : "", o->has_pass ? o->pass : "",
		 o->has_pass ? "\n" : "");
}

static void subscribe(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	char prefetch[128] = "";
	if (o->prefetch)
		snprintf(prefetch, sizeof prefetch, "activemq.prefetchSize:%u\nprefetch-count:%u\n",
			 o->prefetch, o->prefetch);
	send_fmt(c, "SUBSCRIBE\nid:0\ndestination:/%s/%s\nack:%s\n%sreceipt:sub\n\n",
		 o->kind == WB_QUEUE ? "queue" : "topic", o->dest, ack_name(o->ack), prefetch);
}

static bool stomp_can_publish(const struct wb_client *c)
{
	return true;
}

static int stomp_publish(struct wb_client *c, uint64_t seq, uint64_t ts, bool last)
{
	struct stomp_state *s = st(c);
	const struct wb_opts *o = c->run->o;
	bool receipt = c->confirms && (last || (seq + 1) % o->receipt_every == 0);
	uint8_t *p = out(c, s->head_len + (receipt ? 40 : 0) + o->size + 2);
	if (!p)
		return -1;
	uint8_t *q = p;
	memcpy(q, s->head, s->head_len);
	q += s->head_len;
	if (receipt)
		q += sprintf((char *)q, "receipt:s%" PRIu64 "\n", seq + 1);
	*q++ = '\n';
	wb_payload_build(q, o->size, c->run->run_id, c->index, seq, ts);
	q += o->size;
	*q++ = 0;
	wb_conn_commit(&c->conn, (size_t)(q - p));
	return 0;
}

/* DISCONNECT's receipt comes once the broker has read everything before it. */
static void stomp_finish(struct wb_client *c)
{
	static const char bye[] = "DISCONNECT\nreceipt:bye\n\n";
	send_text(c, bye, sizeof bye);
}

static void stomp_ping(struct wb_client *c)
{
}

static void stomp_disconnect(struct wb_client *c)
{
	static const char bye[] = "DISCONNECT\n\n";
	send_text(c, bye, sizeof bye);
}

/* ---- input --------------------------------------------------------------- */

static bool is(const struct hval *h, const char *s)
{
	size_t n = strlen(s);
	return h->n == n && !memcmp(h->p, s, n);
}

/* 1 = a frame (*used bytes), 0 = incomplete, -1 = malformed. */
static int parse_frame(const uint8_t *data, size_t len, struct frame *f, size_t *used)
{
	memset(f, 0, sizeof *f);
	size_t pos = 0;
	bool first = true, have_cl = false;
	for (;;) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		if (!nl)
			return 0;
		size_t end = (size_t)(nl - data), next = end + 1;
		if (end > pos && data[end - 1] == '\r')
			end--;
		const char *line = (const char *)data + pos;
		size_t n = end - pos;
		pos = next;
		if (first) {
			f->cmd = (struct hval){ line, n };
			first = false;
			continue;
		}
		if (!n)
			break;
		const char *colon = memchr(line, ':', n);
		if (!colon)
			return -1;
		struct hval name = { line, (size_t)(colon - line) };
		struct hval v = { colon + 1, n - name.n - 1 };
		struct hval *slot = NULL;
		if (is(&name, "content-length"))
			slot = &f->content_length;
		else if (is(&name, "ack"))
			slot = &f->ack;
		else if (is(&name, "message-id"))
			slot = &f->message_id;
		else if (is(&name, "receipt-id"))
			slot = &f->receipt_id;
		else if (is(&name, "message"))
			slot = &f->message;
		else if (is(&name, "redelivered"))
			slot = &f->redelivered;
		if (slot && !slot->p) /* STOMP 1.2: the first occurrence wins */
			*slot = v;
		if (slot == &f->content_length)
			have_cl = true;
	}
	if (have_cl) {
		uint64_t cl = 0;
		for (size_t i = 0; i < f->content_length.n; i++) {
			char d = f->content_length.p[i];
			if (d < '0' || d > '9' || cl > (1ull << 40))
				return -1;
			cl = cl * 10 + (uint64_t)(d - '0');
		}
		if (len - pos < cl + 1)
			return 0;
		if (data[pos + cl] != 0)
			return -1;
		f->body = data + pos;
		f->body_len = (size_t)cl;
		*used = pos + (size_t)cl + 1;
		return 1;
	}
	const uint8_t *nul = memchr(data + pos, 0, len - pos);
	if (!nul)
		return 0;
	f->body = data + pos;
	f->body_len = (size_t)(nul - (data + pos));
	*used = (size_t)(nul - data) + 1;
	return 1;
}

static void on_receipt(struct wb_client *c, const struct frame *f)
{
	struct stomp_state *s = st(c);
	const struct hval *r = &f->receipt_id;
	if (is(r, "sub")) {
		wb_on_ready(c);
		return;
	}
	if (is(r, "bye")) {
		if (c->confirms && c->sent > s->receipted) {
			wb_on_confirm(c, c->sent - s->receipted, false);
			s->receipted = c->sent;
		}
		wb_on_finished(c);
		return;
	}
	if (r->n > 1 && r->p[0] == 's') {
		uint64_t n = 0;
		for (size_t i = 1; i < r->n; i++)
			n = n * 10 + (uint64_t)(r->p[i] - '0');
		if (n > s->receipted && n <= c->sent) {
			wb_on_confirm(c, n - s->receipted, false);
			s->receipted = n;
			return;
		}
		/* RabbitMQ may answer an earlier receipt after a later one, which
		 * already covered it */
		if (n && n <= s->receipted)
			return;
	}
	wb_fail(c, "unexpected RECEIPT %.*s", (int)r->n, r->p);
}

static void on_message(struct wb_client *c, const struct frame *f)
{
	struct stomp_state *s = st(c);
	enum wb_ack mode = c->run->o->ack;
	c->redelivered = is(&f->redelivered, "true");
	wb_on_message(c, f->body, f->body_len);
	if (mode == WB_ACK_AUTO)
		return;
	const struct hval *id = f->ack.p ? &f->ack : &f->message_id;
	if (!id->p || id->n > sizeof s->last_ack) {
		wb_fail(c, "MESSAGE without a usable ack header");
		return;
	}
	if (mode == WB_ACK_CLIENT) {
		memcpy(s->last_ack, id->p, id->n);
		s->last_ack_len = id->n;
		return;
	}
	uint8_t *p = out(c, id->n + 9);
	if (!p)
		return;
	memcpy(p, "ACK\nid:", 7);
	memcpy(p + 7, id->p, id->n);
	p[7 + id->n] = '\n';
	p[8 + id->n] = '\n';
	wb_conn_commit(&c->conn, id->n + 9);
	if ((p = out(c, 1))) {
		*p = 0;
		wb_conn_commit(&c->conn, 1);
	}
}

static size_t stomp_input(struct wb_client *c, const uint8_t *data, size_t len)
{
	struct stomp_state *s = st(c);
	size_t pos = 0;
	while (pos < len && c->conn.open) {
		if (data[pos] == '\n') { /* heart-beat or trailing EOL */
			pos++;
			continue;
		}
		if (data[pos] == '\r') {
			if (len - pos < 2)
				break;
			pos += data[pos + 1] == '\n' ? 2 : 1;
			continue;
		}
		struct frame f;
		size_t used = 0;
		int r = parse_frame(data + pos, len - pos, &f, &used);
		if (r == 0)
			break;
		if (r < 0) {
			wb_fail(c, "malformed frame from the broker");
			break;
		}
		pos += used;
		if (is(&f.cmd, "MESSAGE")) {
			on_message(c, &f);
		} else if (is(&f.cmd, "RECEIPT")) {
			on_receipt(c, &f);
		} else if (is(&f.cmd, "CONNECTED")) {
			if (c->role == WB_SUB)
				subscribe(c);
			else
				wb_on_ready(c);
		} else if (is(&f.cmd, "ERROR")) {
			size_t bl = f.body_len > 200 ? 200 : f.body_len;
			wb_fail(c, "ERROR: %.*s%s%.*s", (int)f.message.n, f.message.p ? f.message.p : "",
				bl ? " - " : "", (int)bl, (const char *)f.body);
		} else {
			wb_fail(c, "unexpected frame %.*s", (int)f.cmd.n, f.cmd.p);
		}
	}
	if (s->last_ack_len && c->conn.open) {
		send_fmt(c, "ACK\nid:%.*s\n\n", (int)s->last_ack_len, s->last_ack);
		s->last_ack_len = 0;
	}
	return pos;
}

const struct wb_proto wb_stomp = {
	.name = "stomp",
	.default_port = 61613,
	.init = stomp_init,
	.free = stomp_free,
	.start = stomp_start,
	.input = stomp_input,
	.can_publish = stomp_can_publish,
	.publish = stomp_publish,
	.finish = stomp_finish,
	.ping = stomp_ping,
	.disconnect = stomp_disconnect,
};
