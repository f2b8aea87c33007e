/* wharfctl: asks a wharfd of a pair, over its replication link, for its
 * status or to promote itself (docs/ha.md). It proves the pair's secret
 * exactly as a standby does (HELLO with role "control"), and checks the
 * node's proof in WELCOME before it believes an answer.
 *
 *   wharfctl --peer repl://HOST:PORT --secret-file FILE status|promote|failover
 *   wharfctl --peer repl://HOST:PORT --secret-file FILE [--hold SECONDS] link-drop
 *
 * With --tls-ca (and --tls-cert/--tls-key when the node asks for a client
 * certificate) it speaks TLS, as a link with [ha] tls_* keys does.
 *
 * Blocking sockets, one request per run. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tools/wharfctl/pair.h"
#include "ha/auth.h"
#include "ha/frame.h"
#include "net/url.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: wharfctl --peer repl://HOST:PORT [--secret-file FILE] [--timeout SECONDS]\n"
		   "                [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] "
		   "status|promote|failover\n"
		   "       wharfctl ... [--hold SECONDS] link-drop\n"
		   "\n"
		   "  The secret file is needed unless the link is proved by mutual TLS alone.\n"
		   "\n"
		   "  status    the node's role, peer, link state, last record and lag\n"
		   "  promote   a standby stops mirroring and becomes active\n"
		   "  failover  the active (role = auto) stops taking client input, waits until\n"
		   "            its standby has every record, gives it the lead and restarts\n"
		   "            as its standby (a planned switch-over)\n"
		   "  link-drop the active drops the link to its standby as a failed link would\n"
		   "            (it goes on alone, degraded) and refuses it back for --hold\n"
		   "            seconds (default 0); then the standby catches up (the drill's\n"
		   "            link cut)\n");
}

static int read_secret(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "wharfctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t n = fread(out, 1, cap - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	if (n < 16 || strlen(out) != n) {
		fprintf(stderr, "wharfctl: %s: the secret must be at least 16 bytes of text\n", path);
		return -1;
	}
	return 0;
}

static int dial(const char *url, int timeout_s)
{
	struct listen_url u;
	const char *why;
	if (url_parse(url, &u, &why) < 0 || strcmp(u.scheme, "repl")) {
		fprintf(stderr, "wharfctl: --peer '%s' is not repl://HOST:PORT\n", url);
		return -1;
	}
	char port[16];
	snprintf(port, sizeof(port), "%d", u.port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	int e = getaddrinfo(u.host, port, &hints, &ai);
	if (e) {
		fprintf(stderr, "wharfctl: %s: %s\n", u.host, gai_strerror(e));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = { timeout_s, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		fprintf(stderr, "wharfctl: cannot connect to %s: %s\n", url, strerror(errno));
	return fd;
}

static SSL *ssl; /* the link's TLS, when asked for */

static ssize_t io_send(int fd, const uint8_t *p, size_t n)
{
	if (ssl) {
		int w = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		return w > 0 ? w : -1;
	}
	return send(fd, p, n, MSG_NOSIGNAL);
}

static ssize_t io_recv(int fd, uint8_t *p, size_t n)
{
	if (ssl) {
		int r = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		return r > 0 ? r : SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	}
	return recv(fd, p, n, 0);
}

/* TLS over fd, checking the node's certificate against ca and host. */
static int start_tls(int fd, const char *host, const char *ca, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) ||
	    (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	ctx = NULL;
	if (!ssl)
		goto fail;
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
	if (SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
		goto fail;
	return 0;
fail:
	SSL_CTX_free(ctx);
	fprintf(stderr, "wharfctl: TLS: %s\n", ERR_error_string(ERR_get_error(), NULL));
	return -1;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = io_send(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one frame of at most REPL_FRAME_AUTH bytes into buf. */
static int read_frame(int fd, uint8_t *buf, size_t cap, struct repl_frame *f)
{
	size_t have = 0, used;
	for (;;) {
		int r = repl_frame_parse(buf, have, cap, f, &used);
		if (r == 1)
			return 0;
		if (r < 0 || have == cap) {
			fprintf(stderr, "wharfctl: the node sent a malformed frame\n");
			return -1;
		}
		/* read only up to the frame's end: nothing follows that we want */
		size_t want = have < 4 ? 4 - have : 4 + (size_t)(buf[0] | buf[1] << 8 | buf[2] << 16 |
								 (size_t)buf[3] << 24) - have;
		if (want > cap - have)
			want = cap - have;
		ssize_t n = io_recv(fd, buf + have, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "wharfctl: the node closed the link%s%s\n", n < 0 ? ": " : "",
				n < 0 ? strerror(errno) : " (a wrong secret?)");
			return -1;
		}
		have += (size_t)n;
	}
}

int wharfctl_pair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "peer", required_argument, NULL, 'p' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "tls-ca", required_argument, NULL, 'a' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "hold", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *peer = NULL, *secret_file = NULL, *ca = NULL, *cert = NULL, *key = NULL;
	int timeout_s = 30, opt;
	double hold_s = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': peer = optarg; break;
		case 's': secret_file = optarg; break;
		case 't': timeout_s = atoi(optarg) > 0 ? atoi(optarg) : 30; break;
		case 'a': ca = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'H': hold_s = atof(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!peer || (!secret_file && !cert) || optind + 1 != argc ||
	    (strcmp(argv[optind], "status") && strcmp(argv[optind], "promote") &&
	     strcmp(argv[optind], "failover") && strcmp(argv[optind], "link-drop")) ||
	    hold_s < 0 || hold_s > 600) {
		usage(stderr);
		return 2;
	}
	uint8_t type = !strcmp(argv[optind], "status")	  ? REPL_STATUS
		       : !strcmp(argv[optind], "promote")  ? REPL_PROMOTE
		       : !strcmp(argv[optind], "failover") ? REPL_FAILOVER
							   : REPL_LINK_DROP;
	uint64_t hold_ms = (uint64_t)(hold_s * 1000);
	/* Without a secret file, a link proved by mutual TLS alone. */
	char secret[1024] = "";
	if (secret_file && read_secret(secret_file, secret, sizeof(secret)) < 0)
		return 2;
	int fd = dial(peer, timeout_s);
	if (fd < 0)
		return 1;
	struct listen_url u;
	const char *why;
	if (ca && (url_parse(peer, &u, &why) < 0 || start_tls(fd, u.host, ca, cert, key) < 0)) {
		close(fd);
		return 1;
	}
	uint8_t buf[REPL_FRAME_AUTH];
	struct repl_frame f;
	struct repl_challenge c;
	struct repl_hello h = { .node_id = { "wharfctl", 8 }, .role = REPL_ROLE_CONTROL };
	struct repl_welcome w;
	struct repl_str text;
	int rc = 1;
	if (read_frame(fd, buf, sizeof(buf), &f) < 0)
		goto out;
	if (repl_challenge_decode(&f, &c) < 0) {
		fprintf(stderr, "wharfctl: the node did not send a challenge\n");
		goto out;
	}
	uint8_t nonce_a[REPL_NONCE];
	memcpy(nonce_a, c.nonce, REPL_NONCE);
	if (repl_nonce(h.nonce) < 0 ||
	    repl_proof(secret, REPL_LABEL_HELLO, nonce_a, h.nonce, h.proof) < 0)
		goto out;
	size_t n = repl_hello_encode(buf, sizeof(buf), &h);
	if (!n || send_all(fd, buf, n) < 0)
		goto out;
	if (read_frame(fd, buf, sizeof(buf), &f) < 0)
		goto out;
	if (repl_welcome_decode(&f, &w) < 0 ||
	    !repl_proof_ok(secret, REPL_LABEL_WELCOME, h.nonce, nonce_a, w.proof)) {
		fprintf(stderr, "wharfctl: the node did not prove the secret\n");
		goto out;
	}
	n = repl_u64s_encode(buf, sizeof(buf), type, &hold_ms, type == REPL_LINK_DROP);
	if (send_all(fd, buf, n) < 0)
		goto out;
	if (read_frame(fd, buf, sizeof(buf), &f) < 0)
		goto out;
	if (repl_text_decode(&f, &text) < 0) {
		fprintf(stderr, "wharfctl: the node's answer is malformed\n");
		goto out;
	}
	printf("%.*s%s", (int)text.len, text.p,
	       text.len && text.p[text.len - 1] == '\n' ? "" : "\n");
	if (type == REPL_PROMOTE)
		rc = strncmp(text.p, "promoted", 8) && strncmp(text.p, "already", 7) ? 1 : 0;
	else if (type == REPL_FAILOVER)
		rc = text.len > 10 && !strncmp(text.p, "failover: ", 10) &&
				     memmem(text.p, text.len, " takes over", 11)
			     ? 0 : 1;
	else if (type == REPL_LINK_DROP)
		rc = strncmp(text.p, "link dropped", 12) ? 1 : 0;
	else
		rc = 0;
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
	return rc;
}
