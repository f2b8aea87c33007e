#include "config.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "admin/console_files.h"
#include "admin/internal.h"

#define CONSOLE_HOME "/console/"

static const struct {
	const char *ext, *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
};

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

static void redirect_home(struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", CONSOLE_HOME);
	evhttp_send_reply(req, 302, "Found", NULL);
}

/* The file's bytes change only with the binary; FNV-1a of them is an ETag
 * that lets a browser revalidate instead of fetching again. */
static void etag_of(const struct console_file *f, char *out, size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < f->len; i++)
		h = (h ^ f->data[i]) * 0x100000001b3ULL;
	snprintf(out, cap, "\"%016llx\"", (unsigned long long)h);
}

static void send_file(struct evhttp_request *req, const struct console_file *f)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char etag[24];
	etag_of(f, etag, sizeof(etag));
	evhttp_add_header(h, "ETag", etag);
	/* Revalidated on each load: a new wharfd brings new files. */
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/* The console runs its own files only and talks to this listener
	 * only; no other site may frame it to steer an operator's clicks. */
	evhttp_add_header(h, "Content-Security-Policy",
			  "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
	const char *match = evhttp_find_header(evhttp_request_get_input_headers(req),
					       "If-None-Match");
	if (match && !strcmp(match, etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", content_type(f->name));
	evbuffer_add_reference(evhttp_request_get_output_buffer(req), f->data, f->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", NULL);
}

void admin_console(struct evhttp_request *req, const char *path, char **seg, size_t nseg)
{
	if (!admin_only_get(req))
		return;
	/* The page's relative links need the trailing slash. */
	if (nseg == 0 || (nseg == 1 && path[strlen(path) - 1] != '/')) {
		redirect_home(req);
		return;
	}
	const char *name = nseg == 1 ? "index.html" : seg[1];
	/* Only the embedded names: nothing here reads the file system. */
	for (const struct console_file *f = admin_console_files; nseg <= 2 && f->name; f++) {
		if (!strcmp(f->name, name)) {
			send_file(req, f);
			return;
		}
	}
	admin_reply_error(req, 404, "no such resource");
}
