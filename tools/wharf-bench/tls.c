/* TLS for every protocol (mqtts, stomps, amqps, and under wss) on OpenSSL,
 * on the same non-blocking socket and events as plain TCP.
 *
 * The broker's certificate is not verified: the tool only talks to
 * 127.0.0.1 and measures what encryption costs, which verification on the
 * client side does not change. Each connection owns its SSL object (c->tls),
 * freed in tls_close; the context is shared by the run and lives as long as
 * the process. */
#include "config.h"
#include "wb.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;

int wb_tls_init(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return -1;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* the output buffer moves as it grows, and a write may take part of it */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

static const char *ssl_error(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();
	if (!e)
		return NULL;
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

/* 0: try again (errno EAGAIN, c->want_write set), -1: failed. */
static int retry_or_fail(struct wb_conn *c, SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->want_write = e == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return 0;
	}
	if (e == SSL_ERROR_SYSCALL && errno)
		return -1;
	c->err = ssl_error();
	if (!c->err)
		c->err = e == SSL_ERROR_ZERO_RETURN ? "TLS closed by the broker" : "TLS failure";
	errno = EPROTO;
	return -1;
}

static int tls_open(struct wb_conn *c)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, c->fd)) {
		SSL_free(ssl);
		errno = ENOMEM;
		return -1;
	}
	SSL_set_connect_state(ssl);
	c->tls = ssl;
	return 0;
}

static int tls_handshake(struct wb_conn *c)
{
	int rc = SSL_do_handshake(c->tls);
	if (rc == 1)
		return 1;
	return retry_or_fail(c, c->tls, rc) == 0 ? 0 : -1;
}

/* Reads record after record until the buffer is full or the socket is
 * empty: nothing stays decrypted inside OpenSSL where no event would see it. */
static ssize_t tls_read(struct wb_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		int chunk = len - got > 1u << 30 ? 1 << 30 : (int)(len - got);
		int n = SSL_read(c->tls, (char *)buf + got, chunk);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (SSL_get_error(c->tls, n) == SSL_ERROR_ZERO_RETURN)
			return (ssize_t)got;
		/* a failure after data (the broker's last frame, then its close)
		 * is reported by the next read, which fails the same way */
		if (retry_or_fail(c, c->tls, n) < 0 && !got)
			return -1;
		break;
	}
	if (!got) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)got;
}

static ssize_t tls_write(struct wb_conn *c, const void *buf, size_t len)
{
	int n = SSL_write(c->tls, buf, len > 1u << 30 ? 1 << 30 : (int)len);
	if (n > 0)
		return n;
	retry_or_fail(c, c->tls, n);
	return -1;
}

static void tls_close(struct wb_conn *c)
{
	if (!c->tls)
		return;
	if (!c->handshaking)
		SSL_shutdown(c->tls); /* close_notify, best effort: the socket closes next */
	SSL_free(c->tls);
	ERR_clear_error();
	c->tls = NULL;
}

const struct wb_transport wb_tls = {
	.name = "tls",
	.open = tls_open,
	.handshake = tls_handshake,
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
};
