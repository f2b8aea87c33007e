/* wharf-bench: options, the broker's /proc figures, and the report. */
#include "config.h"
#include "wb.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef PACKAGE_VERSION
#define WB_VERSION PACKAGE_VERSION
#else
#define WB_VERSION "0.1"
#endif

enum {
	EXIT_OK = 0,
	EXIT_VERIFY = 1,   /* loss, corruption, rejected publishes, ... */
	EXIT_USAGE = 2,
	EXIT_TIMEOUT = 3,  /* --timeout or SIGINT */
	EXIT_ERROR = 4,    /* connection or protocol error */
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: wharf-bench [OPTION]...\n"
"Load generator for Wharf (and any MQTT, STOMP or AMQP 1.0 broker on this machine).\n"
"       wharf-bench --drill --help: the failover drill of an active/standby pair\n"
"\n"
"  --url URL              SCHEME://[USER[:PASS]@]127.0.0.1[:PORT][/PATH], localhost only;\n"
"                         mqtt (1883), mqtts (8883), stomp (61613), stomps (61614),\n"
"                         amqp (5672), amqps (5671), or ws (61619) and wss (61620)\n"
"                         with --protocol\n"
"      --protocol P       over ws/wss: mqtt, stomp or amqp (subprotocols mqtt,\n"
"                         v12.stomp, amqp); PATH is the request path (/)\n"
"  -p, --publishers N     publishing connections (1)\n"
"  -s, --subscribers N    subscribing connections (1); on a queue they compete,\n"
"                         on a topic each gets every message\n"
"  -n, --count N          messages per publisher (100000)\n"
"  -d, --duration SEC     publish for SEC seconds instead of --count\n"
"  -S, --size BYTES       payload size, at least 32 (64)\n"
"  -q, --qos 0|1|2        MQTT QoS of publishes and subscriptions (0)\n"
"      --mqtt-version 3|4|5  MQTT 3.1, 3.1.1 or 5.0 (4)\n"
"      --persistent       STOMP persistent:true, AMQP header durable\n"
"      --presettled       AMQP: pre-settled transfers both ways (no outcomes)\n"
"      --topic[=NAME]     publish to a topic (MQTT default; NAME wharf/bench)\n"
"      --queue[=NAME]     publish to a queue (STOMP, AMQP default; NAME wharf.bench);\n"
"                         MQTT: subscribers share $share/wharf-bench/NAME;\n"
"                         AMQP: NAME is the address (topics: topic://NAME), and\n"
"                         a NAME with a '/' is taken as it is (RabbitMQ: /queue/NAME)\n"
"      --dest NAME        the topic or queue name\n"
"  -r, --rate MSG/S       fixed rate per publisher, evenly spaced (as fast as possible)\n"
"  -w, --window N         unconfirmed messages per publisher: MQTT QoS > 0 in flight\n"
"                         (100), STOMP messages awaiting a receipt, AMQP unsettled\n"
"                         transfers (1000); 0 = none\n"
"      --receipt-every K  STOMP: ask for a receipt every K messages (window/4)\n"
"      --prefetch N       STOMP prefetch (activemq.prefetchSize, prefetch-count);\n"
"                         AMQP link credit (1000); MQTT 5: subscribers' receive maximum\n"
"      --ack MODE         STOMP: auto, client or client-individual (auto)\n"
"      --idle-connections N  extra connections held open, idle, during the run\n"
"      --broker-pid PID   report the broker's CPU (all threads, from /proc) and memory\n"
"                         over the message flow\n"
"      --timeout SEC      overall deadline (duration + 60, or 300)\n"
"      --drain SEC        after the publishers end, give up when nothing arrives\n"
"                         for SEC seconds (2)\n"
"      --intended-time    with --rate, measure latency from each message's scheduled\n"
"                         send time (no coordinated omission)\n"
"      --strict           any loss, duplicate or reordering fails the run\n"
"      --keepalive SEC    MQTT keep alive (60)\n"
"      --connect-concurrency N  handshakes in progress at once (256)\n"
"      --client-id PREFIX client id prefix (wb<pid>)\n"
"      --client LIB       wharf-bench (its own clients, batching writes) or, for mqtt://,\n"
"                         libmosquitto: a packet per write as a device library does\n"
"      --frame-writes     wharf-bench's clients write each frame with its own system call\n"
"      --json             print one JSON line instead of the summary\n"
"      --quiet            no progress line\n"
"  -h, --help             this text\n"
"\n"
"Exit status: 0 ok, 1 verification failed (loss where the flow promises delivery,\n"
"corruption, rejected publishes, duplicates at QoS 2), 2 usage, 3 timeout or\n"
"interrupted, 4 connection or protocol error.\n");
}

/* ---- /proc ---------------------------------------------------------------- */

/* Precise: the scheduler's run time of every thread, in ns. */
static bool schedstat_cpu(pid_t pid, double *out)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return false;
	uint64_t total = 0;
	bool any = false;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[300];
		snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		unsigned long long ns;
		if (fscanf(f, "%llu", &ns) == 1) {
			total += ns;
			any = true;
		}
		fclose(f);
	}
	closedir(d);
	*out = (double)total / 1e9;
	return any;
}

int wb_proc_sample(pid_t pid, struct wb_proc_sample *s)
{
	memset(s, 0, sizeof *s);
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut, stt;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &stt) != 2)
		return -1;
	s->cpu_stat_s = s->cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
	/* The kernel derives utime + stime from the same run time, rounded to
	 * clock ticks (10 ms): too coarse for a flow of a second. */
	double precise;
	if (schedstat_cpu(pid, &precise)) {
		s->cpu_s = precise;
		s->precise = true;
	}
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r"))) {
		char line[256];
		while (fgets(line, sizeof line, f)) {
			unsigned long long v;
			if (sscanf(line, "VmRSS: %llu", &v) == 1)
				s->rss_kib = v;
			else if (sscanf(line, "VmHWM: %llu", &v) == 1)
				s->hwm_kib = v;
		}
		fclose(f);
	}
	s->ok = true;
	return 0;
}

double wb_self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- options --------------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_unsigned(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;
	if (!parse_u64(s, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= 0) || v > 1e9)
		return false;
	*out = v;
	return true;
}

static int parse_url(struct wb_opts *o, const char *url)
{
	const char *p = strstr(url, "://");
	if (!p) {
		fprintf(stderr, "wharf-bench: %s: expected SCHEME://HOST[:PORT]\n", url);
		return -1;
	}
	static const struct {
		const char *name;
		enum wb_proto_id proto;
		enum wb_tp_id tp;
		int port;
	} schemes[] = {
		{ "mqtt", WB_PROTO_MQTT, WB_TP_TCP, 1883 },
		{ "mqtts", WB_PROTO_MQTT, WB_TP_TLS, 8883 },
		{ "stomp", WB_PROTO_STOMP, WB_TP_TCP, 61613 },
		{ "stomps", WB_PROTO_STOMP, WB_TP_TLS, 61614 },
		{ "amqp", WB_PROTO_AMQP, WB_TP_TCP, 5672 },
		{ "amqps", WB_PROTO_AMQP, WB_TP_TLS, 5671 },
		{ "ws", WB_PROTO_MQTT, WB_TP_WS, 61619 },
		{ "wss", WB_PROTO_MQTT, WB_TP_WSS, 61620 },
	};
	size_t sl = (size_t)(p - url), i;
	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (strlen(schemes[i].name) == sl && !strncmp(url, schemes[i].name, sl))
			break;
	if (i == sizeof schemes / sizeof schemes[0]) {
		fprintf(stderr, "wharf-bench: %.*s: unsupported scheme (mqtt, mqtts, stomp, stomps, "
				"amqp, amqps, ws, wss)\n", (int)sl, url);
		return -1;
	}
	o->tp = schemes[i].tp;
	o->port = schemes[i].port;
	if (o->tp != WB_TP_WS && o->tp != WB_TP_WSS)
		o->proto = schemes[i].proto;
	p += 3;
	const char *end = p + strcspn(p, "/?#");
	if (*end == '/' && snprintf(o->path, sizeof o->path, "%s", end) >= (int)sizeof o->path)
		return -1;
	const char *at = memchr(p, '@', (size_t)(end - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ul = (size_t)((colon ? colon : at) - p);
		if (ul >= sizeof o->user || (colon && (size_t)(at - colon - 1) >= sizeof o->pass))
			return -1;
		memcpy(o->user, p, ul);
		o->user[ul] = 0;
		o->has_user = true;
		if (colon) {
			memcpy(o->pass, colon + 1, (size_t)(at - colon - 1));
			o->pass[at - colon - 1] = 0;
			o->has_pass = true;
		}
		p = at + 1;
	}
	const char *colon = memchr(p, ':', (size_t)(end - p));
	size_t hl = (size_t)((colon ? colon : end) - p);
	if (hl >= sizeof o->host)
		return -1;
	memcpy(o->host, p, hl);
	o->host[hl] = 0;
	if (strcmp(o->host, "127.0.0.1") && strcmp(o->host, "localhost")) {
		fprintf(stderr, "wharf-bench: %s: only 127.0.0.1 and localhost are allowed\n",
			o->host);
		return -1;
	}
	if (colon) {
		char port[16];
		size_t pl = (size_t)(end - colon - 1);
		unsigned v;
		if (pl == 0 || pl >= sizeof port)
			return -1;
		memcpy(port, colon + 1, pl);
		port[pl] = 0;
		if (!parse_unsigned(port, 65535, &v) || !v) {
			fprintf(stderr, "wharf-bench: %s: bad port\n", port);
			return -1;
		}
		o->port = (int)v;
	}
	return 0;
}

enum {
	OPT_MQTT_VERSION = 256, OPT_PERSISTENT, OPT_TOPIC, OPT_QUEUE, OPT_DEST, OPT_RECEIPT_EVERY,
	OPT_PREFETCH, OPT_ACK, OPT_IDLE, OPT_BROKER_PID, OPT_JSON, OPT_TIMEOUT, OPT_DRAIN,
	OPT_STRICT, OPT_KEEPALIVE, OPT_CONC, OPT_CLIENT_ID, OPT_QUIET, OPT_CLIENT_LIB, OPT_FRAME_WRITES, OPT_INTENDED, OPT_URL,
	OPT_PROTOCOL, OPT_PRESETTLED,
};

static const struct option long_opts[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "presettled", no_argument, NULL, OPT_PRESETTLED },
	{ "publishers", required_argument, NULL, 'p' },
	{ "subscribers", required_argument, NULL, 's' },
	{ "count", required_argument, NULL, 'n' },
	{ "duration", required_argument, NULL, 'd' },
	{ "size", required_argument, NULL, 'S' },
	{ "qos", required_argument, NULL, 'q' },
	{ "mqtt-version", required_argument, NULL, OPT_MQTT_VERSION },
	{ "persistent", no_argument, NULL, OPT_PERSISTENT },
	{ "topic", optional_argument, NULL, OPT_TOPIC },
	{ "queue", optional_argument, NULL, OPT_QUEUE },
	{ "dest", required_argument, NULL, OPT_DEST },
	{ "rate", required_argument, NULL, 'r' },
	{ "window", required_argument, NULL, 'w' },
	{ "receipt-every", required_argument, NULL, OPT_RECEIPT_EVERY },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "ack", required_argument, NULL, OPT_ACK },
	{ "idle-connections", required_argument, NULL, OPT_IDLE },
	{ "broker-pid", required_argument, NULL, OPT_BROKER_PID },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "drain", required_argument, NULL, OPT_DRAIN },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "intended-time", no_argument, NULL, OPT_INTENDED },
	{ "keepalive", required_argument, NULL, OPT_KEEPALIVE },
	{ "connect-concurrency", required_argument, NULL, OPT_CONC },
	{ "client-id", required_argument, NULL, OPT_CLIENT_ID },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "client", required_argument, NULL, OPT_CLIENT_LIB },
	{ "frame-writes", no_argument, NULL, OPT_FRAME_WRITES },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int bad(const char *opt, const char *arg)
{
	fprintf(stderr, "wharf-bench: --%s: invalid value '%s'\n", opt, arg ? arg : "");
	return -1;
}

static int parse_opts(struct wb_opts *o, int argc, char **argv)
{
	bool kind_set = false, window_set = false, count_set = false, timeout_set = false;
	bool proto_set = false;
	const char *dest = NULL;
	uint64_t v;
	memset(o, 0, sizeof *o);
	o->url = "mqtt://127.0.0.1:1883";
	o->publishers = o->subscribers = 1;
	o->size = 64;
	o->mqtt_version = 4;
	o->keepalive = 60;
	o->drain = 2;
	o->connect_concurrency = 256;
	o->ack = WB_ACK_AUTO;
	snprintf(o->client_prefix, sizeof o->client_prefix, "wb%d", (int)getpid());
	int ch;
	while ((ch = getopt_long(argc, argv, "p:s:n:d:S:q:r:w:h", long_opts, NULL)) != -1) {
		switch (ch) {
		case OPT_URL: o->url = optarg; break;
		case OPT_PROTOCOL:
			if (!strcmp(optarg, "mqtt"))
				o->proto = WB_PROTO_MQTT;
			else if (!strcmp(optarg, "stomp"))
				o->proto = WB_PROTO_STOMP;
			else if (!strcmp(optarg, "amqp"))
				o->proto = WB_PROTO_AMQP;
			else
				return bad("protocol", optarg);
			proto_set = true;
			break;
		case OPT_PRESETTLED: o->presettled = true; break;
		case 'p':
			if (!parse_unsigned(optarg, 100000, &o->publishers))
				return bad("publishers", optarg);
			break;
		case 's':
			if (!parse_unsigned(optarg, 100000, &o->subscribers))
				return bad("subscribers", optarg);
			break;
		case 'n':
			if (!parse_u64(optarg, 1ull << 34, &o->count) || !o->count)
				return bad("count", optarg);
			count_set = true;
			break;
		case 'd':
			if (!parse_double(optarg, &o->duration) || o->duration <= 0)
				return bad("duration", optarg);
			break;
		case 'S':
			if (!parse_u64(optarg, 256u << 20, &v) || v < WB_HDR_SIZE)
				return bad("size", optarg);
			o->size = (size_t)v;
			break;
		case 'q':
			if (!parse_u64(optarg, 2, &v))
				return bad("qos", optarg);
			o->qos = (int)v;
			break;
		case OPT_MQTT_VERSION:
			if (!parse_u64(optarg, 5, &v) || v < 3)
				return bad("mqtt-version", optarg);
			o->mqtt_version = (int)v;
			break;
		case OPT_PERSISTENT: o->persistent = true; break;
		case OPT_TOPIC:
		case OPT_QUEUE:
			o->kind = ch == OPT_TOPIC ? WB_TOPIC : WB_QUEUE;
			kind_set = true;
			if (optarg)
				dest = optarg;
			break;
		case OPT_DEST: dest = optarg; break;
		case 'r':
			if (!parse_double(optarg, &o->rate))
				return bad("rate", optarg);
			break;
		case 'w':
			if (!parse_unsigned(optarg, 1000000, &o->window))
				return bad("window", optarg);
			window_set = true;
			break;
		case OPT_RECEIPT_EVERY:
			if (!parse_unsigned(optarg, 1000000, &o->receipt_every) || !o->receipt_every)
				return bad("receipt-every", optarg);
			break;
		case OPT_PREFETCH:
			if (!parse_unsigned(optarg, 1000000, &o->prefetch) || !o->prefetch)
				return bad("prefetch", optarg);
			break;
		case OPT_ACK:
			if (!strcmp(optarg, "auto"))
				o->ack = WB_ACK_AUTO;
			else if (!strcmp(optarg, "client"))
				o->ack = WB_ACK_CLIENT;
			else if (!strcmp(optarg, "client-individual"))
				o->ack = WB_ACK_CLIENT_INDIVIDUAL;
			else
				return bad("ack", optarg);
			break;
		case OPT_IDLE:
			if (!parse_unsigned(optarg, 1000000, &o->idle))
				return bad("idle-connections", optarg);
			break;
		case OPT_BROKER_PID:
			if (!parse_u64(optarg, 1u << 30, &v) || !v)
				return bad("broker-pid", optarg);
			o->broker_pid = (pid_t)v;
			break;
		case OPT_JSON: o->json = true; break;
		case OPT_TIMEOUT:
			if (!parse_double(optarg, &o->timeout) || o->timeout <= 0)
				return bad("timeout", optarg);
			timeout_set = true;
			break;
		case OPT_DRAIN:
			if (!parse_double(optarg, &o->drain))
				return bad("drain", optarg);
			break;
		case OPT_STRICT: o->strict = true; break;
		case OPT_INTENDED: o->intended_time = true; break;
		case OPT_KEEPALIVE:
			if (!parse_unsigned(optarg, 65535, &o->keepalive))
				return bad("keepalive", optarg);
			break;
		case OPT_CONC:
			if (!parse_unsigned(optarg, 100000, &o->connect_concurrency) ||
			    !o->connect_concurrency)
				return bad("connect-concurrency", optarg);
			break;
		case OPT_CLIENT_ID:
			if (strlen(optarg) >= sizeof o->client_prefix)
				return bad("client-id", optarg);
			snprintf(o->client_prefix, sizeof o->client_prefix, "%s", optarg);
			break;
		case OPT_QUIET: o->quiet = true; break;
		case OPT_CLIENT_LIB:
			if (strcmp(optarg, "libmosquitto") && strcmp(optarg, "wharf-bench"))
				return bad("client", optarg);
			o->libmosquitto = !strcmp(optarg, "libmosquitto");
			break;
		case OPT_FRAME_WRITES: o->frame_writes = true; break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wharf-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	enum wb_proto_id chosen = o->proto;
	if (parse_url(o, o->url) < 0)
		return -1;
	bool ws = o->tp == WB_TP_WS || o->tp == WB_TP_WSS;
	if (proto_set && !ws) {
		fprintf(stderr, "wharf-bench: --protocol is for ws:// and wss:// URLs\n");
		return -1;
	}
	if (ws)
		o->proto = chosen;
	bool mqtt = o->proto == WB_PROTO_MQTT, stomp = o->proto == WB_PROTO_STOMP;
	bool amqp = o->proto == WB_PROTO_AMQP;
	if (!kind_set)
		o->kind = mqtt ? WB_TOPIC : WB_QUEUE;
	if (!dest)
		dest = mqtt ? "wharf/bench" : "wharf.bench";
	if (!*dest || strlen(dest) >= sizeof o->dest ||
	    strpbrk(dest, mqtt ? "+#" : stomp ? ":\r\n" : "\r\n")) {
		fprintf(stderr, "wharf-bench: invalid destination name '%s'\n", dest);
		return -1;
	}
	snprintf(o->dest, sizeof o->dest, "%s", dest);
	if (o->duration > 0 && count_set) {
		fprintf(stderr, "wharf-bench: --count and --duration exclude each other\n");
		return -1;
	}
	if (o->duration <= 0 && !count_set)
		o->count = 100000;
	if (o->libmosquitto && !(mqtt && o->tp == WB_TP_TCP)) {
		fprintf(stderr, "wharf-bench: --client libmosquitto is for mqtt:// URLs\n");
		return -1;
	}
	if (!window_set)
		o->window = mqtt ? 100 : 1000;
	if (mqtt && o->window > 65535) {
		fprintf(stderr, "wharf-bench: an MQTT window is at most 65535 (packet ids)\n");
		return -1;
	}
	if (stomp && !o->receipt_every)
		o->receipt_every = o->window / 4 ? o->window / 4 : 1;
	if (stomp && o->window && o->receipt_every > o->window) {
		fprintf(stderr, "wharf-bench: --receipt-every must not exceed --window\n");
		return -1;
	}
	if (!stomp && (o->receipt_every || o->ack != WB_ACK_AUTO)) {
		fprintf(stderr, "wharf-bench: --receipt-every and --ack are STOMP options\n");
		return -1;
	}
	if (!mqtt && (o->qos || o->mqtt_version != 4)) {
		fprintf(stderr, "wharf-bench: --qos and --mqtt-version are MQTT options\n");
		return -1;
	}
	if (mqtt && o->persistent) {
		fprintf(stderr, "wharf-bench: --persistent is a STOMP and AMQP option\n");
		return -1;
	}
	if (!amqp && o->presettled) {
		fprintf(stderr, "wharf-bench: --presettled is an AMQP option\n");
		return -1;
	}
	if (mqtt && o->size + strlen(o->dest) + 16 > 268435455) {
		fprintf(stderr, "wharf-bench: payload too large for MQTT\n");
		return -1;
	}
	if (!timeout_set)
		o->timeout = o->duration > 0 ? o->duration + 60 : 300;
	return 0;
}

/* ---- report ---------------------------------------------------------------- */

struct summary {
	uint64_t sent, confirmed, rejected, expected, missing, dups, ooo;
	double flow_s, pub_s, recv_s, sent_rate, recv_rate;
	bool loss_fatal, ok;
	double cpu_s;
	int status;
	const char *verdict;
};

static double secs(uint64_t a, uint64_t b)
{
	return a && b > a ? (double)(b - a) / 1e9 : 0;
}

static void summarize(const struct wb_run *r, struct summary *s)
{
	const struct wb_opts *o = r->o;
	memset(s, 0, sizeof *s);
	for (unsigned i = 0; i < o->publishers; i++) {
		s->sent += r->pubs[i].sent;
		s->confirmed += r->pubs[i].confirmed;
		s->rejected += r->pubs[i].rejected;
	}
	if (o->kind == WB_QUEUE) {
		s->expected = o->subscribers ? s->sent - s->rejected : 0;
		if (o->subscribers) {
			s->missing = wb_track_missing(&r->group, r->sent);
			s->dups = r->group.dups;
		}
	} else {
		s->expected = (s->sent - s->rejected) * o->subscribers;
	}
	for (unsigned i = 0; i < o->subscribers; i++) {
		const struct wb_track *t = &r->subs[i].track;
		if (o->kind == WB_TOPIC)
			s->missing += wb_track_missing(t, r->sent);
		s->dups += t->dups;
		s->ooo += t->ooo;
	}
	/* rejected publishes never reach anyone: not counted as missing twice */
	if (s->rejected && s->missing >= s->rejected * (o->kind == WB_TOPIC ? o->subscribers : 1))
		s->missing -= s->rejected * (o->kind == WB_TOPIC ? o->subscribers : 1);
	uint64_t pub_end = r->t_pubs_done ? r->t_pubs_done : r->t_end;
	uint64_t recv_end = r->t_last_recv ? r->t_last_recv : r->t_end;
	s->flow_s = secs(r->t_start, r->t_end);
	s->pub_s = secs(r->t_start, pub_end);
	s->recv_s = secs(r->t_start, recv_end);
	s->sent_rate = s->pub_s > 0 ? (double)s->sent / s->pub_s : 0;
	s->recv_rate = s->recv_s > 0 ? (double)r->deliveries / s->recv_s : 0;
	if (r->broker0.ok && r->broker1.ok)
		s->cpu_s = r->broker1.cpu_s - r->broker0.cpu_s;

	bool mqtt = o->proto == WB_PROTO_MQTT;
	s->loss_fatal = o->strict || (mqtt && o->qos >= 1) || o->persistent ||
			(o->proto == WB_PROTO_STOMP && o->kind == WB_QUEUE) ||
			(o->proto == WB_PROTO_AMQP && !o->presettled);
	bool verify_fail = r->corrupt || s->rejected || r->idle_lost ||
			   (s->missing && s->loss_fatal) ||
			   (s->dups && (o->strict || (mqtt && o->qos == 2))) || (s->ooo && o->strict);
	if (r->failed) {
		s->status = EXIT_ERROR;
		s->verdict = "ERROR";
	} else if (r->timed_out || r->interrupted) {
		s->status = EXIT_TIMEOUT;
		s->verdict = r->interrupted ? "INTERRUPTED" : "TIMEOUT";
	} else if (verify_fail) {
		s->status = EXIT_VERIFY;
		s->verdict = "FAILED";
	} else {
		s->status = EXIT_OK;
		s->verdict = s->missing ? "OK (loss allowed at this QoS)" : "OK";
	}
}

static const char *fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 10000)
		snprintf(buf, len, "%.2f us", (double)ns / 1e3);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000ull)
		snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", (double)ns / 1e9);
	return buf;
}

static const char *const proto_names[] = { "mqtt", "stomp", "amqp" };
static const char *const tp_names[] = { "tcp", "tls", "ws", "wss" };

static const char *ack_name(enum wb_ack a)
{
	return a == WB_ACK_AUTO ? "auto" : a == WB_ACK_CLIENT ? "client" : "client-individual";
}

static const char *flow_name(const struct wb_opts *o, char *buf, size_t len)
{
	const char *kind = o->kind == WB_QUEUE ? "competing consumers" : "fan-out";
	if (o->proto == WB_PROTO_MQTT)
		snprintf(buf, len, "MQTT %s QoS %d %s %s over %s",
			 o->mqtt_version == 5 ? "5.0" : o->mqtt_version == 4 ? "3.1.1" : "3.1", o->qos,
			 o->kind == WB_QUEUE ? "shared subscription" : "topic", o->dest, tp_names[o->tp]);
	else if (o->proto == WB_PROTO_STOMP)
		snprintf(buf, len, "STOMP 1.2 %s /%s/%s, %s, ack %s over %s",
			 o->persistent ? "persistent" : "transient", o->kind == WB_QUEUE ? "queue" : "topic",
			 o->dest, kind, ack_name(o->ack), tp_names[o->tp]);
	else
		snprintf(buf, len, "AMQP 1.0 %s %s %s %s, %s over %s",
			 o->persistent ? "durable" : "transient", o->presettled ? "pre-settled" : "unsettled",
			 o->kind == WB_QUEUE ? "queue" : "topic", o->dest, kind, tp_names[o->tp]);
	return buf;
}

static void report_human(const struct wb_run *r, const struct summary *s)
{
	const struct wb_opts *o = r->o;
	char a[32], b[32], c[32], d[32], e[32], f[32], flow[400];
	printf("wharf-bench %s  %s  %s\n", WB_VERSION, o->url, flow_name(o, flow, sizeof flow));
	printf("  %u publisher%s -> %u subscriber%s", o->publishers, o->publishers == 1 ? "" : "s",
	       o->subscribers, o->subscribers == 1 ? "" : "s");
	if (o->idle)
		printf(" (+%u idle)", o->idle);
	printf(", %zu B", o->size);
	if (o->count)
		printf(", %" PRIu64 " msg/publisher", o->count);
	else
		printf(", %.1f s", o->duration);
	if (o->rate > 0)
		printf(", %.0f msg/s/publisher", o->rate);
	if (r->pubs && o->publishers && r->pubs[0].confirms)
		printf(", window %u", r->pubs[0].window);
	printf("\n");
	printf("flow       %.3f s (publishers done after %.3f s)\n", s->flow_s, s->pub_s);
	printf("sent       %10" PRIu64 " msg  %10.0f msg/s", s->sent, s->sent_rate);
	if (r->pubs && o->publishers && r->pubs[0].confirms)
		printf("  confirmed %" PRIu64, s->confirmed);
	if (s->rejected)
		printf("  REJECTED %" PRIu64, s->rejected);
	printf("\n");
	printf("received   %10" PRIu64 " msg  %10.0f msg/s  expected %" PRIu64 "\n", r->deliveries,
	       s->recv_rate, s->expected);
	const struct wb_hist *h = &r->lat;
	if (h->n)
		printf("latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (min %s)\n",
		       fmt_ns(a, sizeof a, wb_hist_quantile(h, 0.5)),
		       fmt_ns(b, sizeof b, wb_hist_quantile(h, 0.9)),
		       fmt_ns(c, sizeof c, wb_hist_quantile(h, 0.99)),
		       fmt_ns(d, sizeof d, wb_hist_quantile(h, 0.999)), fmt_ns(e, sizeof e, h->max),
		       fmt_ns(f, sizeof f, h->min));
	printf("verify     missing %" PRIu64 ", duplicated %" PRIu64 ", out-of-order %" PRIu64
	       ", corrupted %" PRIu64,
	       s->missing, s->dups, s->ooo, r->corrupt);
	if (r->foreign)
		printf(", from other runs %" PRIu64, r->foreign);
	if (r->idle_lost)
		printf(", idle connections lost %u", r->idle_lost);
	printf("\n");
	bool trouble = s->missing || s->dups || s->ooo || r->corrupt;
	if (trouble || (o->subscribers > 1 && o->subscribers <= 10)) {
		unsigned shown = 0;
		for (unsigned i = 0; i < o->subscribers && shown < 20; i++) {
			const struct wb_track *t = &r->subs[i].track;
			uint64_t miss = o->kind == WB_TOPIC ? wb_track_missing(t, r->sent) : 0;
			if (trouble && !miss && !t->dups && !t->ooo && !t->corrupt && o->kind == WB_TOPIC)
				continue;
			printf("  %-20s received %" PRIu64 "", r->subs[i].id, t->deliveries);
			if (o->kind == WB_TOPIC)
				printf(", missing %" PRIu64, miss);
			printf(", duplicated %" PRIu64 ", out-of-order %" PRIu64 ", corrupted %" PRIu64 "\n",
			       t->dups, t->ooo, t->corrupt);
			shown++;
		}
		if (o->kind == WB_QUEUE && r->group.dups)
			printf("  (%" PRIu64 " messages reached more than one consumer)\n", r->group.dups);
	}
	if (r->broker0.ok && r->broker1.ok) {
		uint64_t n = r->deliveries ? r->deliveries : s->sent;
		printf("broker     pid %d: cpu %.3f s = %.3f s per 100k delivered = %.2f us/msg; "
		       "rss %.1f -> %.1f MiB, peak (VmHWM) %.1f MiB\n",
		       (int)o->broker_pid, s->cpu_s, n ? s->cpu_s / (double)n * 1e5 : 0,
		       n ? s->cpu_s / (double)n * 1e6 : 0, (double)r->broker0.rss_kib / 1024,
		       (double)r->broker1.rss_kib / 1024, (double)r->broker1.hwm_kib / 1024);
	} else if (o->broker_pid) {
		printf("broker     pid %d: could not read /proc\n", (int)o->broker_pid);
	}
	double bench = r->bench_cpu1 - r->bench_cpu0;
	printf("bench      cpu %.3f s (%.0f%% of one core over the flow)\n", bench,
	       s->flow_s > 0 ? bench / s->flow_s * 100 : 0);
	if (r->drain_gave_up)
		printf("note       nothing arrived for %.1f s after the publishers ended\n", o->drain);
	if (r->failed)
		printf("error      %s\n", r->error);
	printf("result     %s\n", s->verdict);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void report_json(const struct wb_run *r, const struct summary *s)
{
	const struct wb_opts *o = r->o;
	const struct wb_hist *h = &r->lat;
	printf("{\"tool\":\"wharf-bench\",\"version\":\"%s\",\"url\":", WB_VERSION);
	json_str(o->url);
	printf(",\"protocol\":\"%s\",\"transport\":\"%s\"", proto_names[o->proto], tp_names[o->tp]);
	if (o->proto == WB_PROTO_MQTT)
		printf(",\"mqtt_version\":%d,\"qos\":%d", o->mqtt_version, o->qos);
	else if (o->proto == WB_PROTO_STOMP)
		printf(",\"persistent\":%s,\"ack\":\"%s\"", o->persistent ? "true" : "false",
		       ack_name(o->ack));
	else
		printf(",\"persistent\":%s,\"presettled\":%s", o->persistent ? "true" : "false",
		       o->presettled ? "true" : "false");
	printf(",\"kind\":\"%s\",\"dest\":", o->kind == WB_QUEUE ? "queue" : "topic");
	json_str(o->dest);
	printf(",\"publishers\":%u,\"subscribers\":%u,\"idle_connections\":%u,\"size\":%zu", o->publishers,
	       o->subscribers, o->idle, o->size);
	printf(",\"count\":%" PRIu64 ",\"duration_s\":%g,\"rate\":%g,\"window\":%u", o->count,
	       o->duration, o->rate, o->window);
	printf(",\"flow_s\":%.6f,\"publish_s\":%.6f", s->flow_s, s->pub_s);
	printf(",\"sent\":%" PRIu64 ",\"confirmed\":%" PRIu64 ",\"rejected\":%" PRIu64, s->sent,
	       s->confirmed, s->rejected);
	printf(",\"received\":%" PRIu64 ",\"expected\":%" PRIu64, r->deliveries, s->expected);
	printf(",\"sent_per_s\":%.1f,\"received_per_s\":%.1f", s->sent_rate, s->recv_rate);
	printf(",\"latency_us\":{\"n\":%" PRIu64 ",\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
	       "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
	       h->n, h->n ? (double)h->min / 1e3 : 0, h->n ? h->sum / (double)h->n / 1e3 : 0,
	       (double)wb_hist_quantile(h, 0.5) / 1e3, (double)wb_hist_quantile(h, 0.9) / 1e3,
	       (double)wb_hist_quantile(h, 0.99) / 1e3, (double)wb_hist_quantile(h, 0.999) / 1e3,
	       (double)h->max / 1e3);
	printf(",\"missing\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"out_of_order\":%" PRIu64
	       ",\"corrupted\":%" PRIu64 ",\"foreign\":%" PRIu64 ",\"idle_lost\":%u",
	       s->missing, s->dups, s->ooo, r->corrupt, r->foreign, r->idle_lost);
	printf(",\"per_subscriber\":[");
	for (unsigned i = 0; i < o->subscribers; i++) {
		const struct wb_track *t = &r->subs[i].track;
		printf("%s{\"received\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"duplicated\":%" PRIu64
		       ",\"out_of_order\":%" PRIu64 ",\"corrupted\":%" PRIu64 "}",
		       i ? "," : "", t->deliveries, o->kind == WB_TOPIC ? wb_track_missing(t, r->sent) : 0,
		       t->dups, t->ooo, t->corrupt);
	}
	printf("]");
	if (r->broker0.ok && r->broker1.ok) {
		uint64_t n = r->deliveries ? r->deliveries : s->sent;
		printf(",\"broker\":{\"pid\":%d,\"cpu_source\":\"%s\",\"cpu_stat_s\":%.2f,\"cpu_s\":%.6f,\"cpu_s_per_100k\":%.6f,\"cpu_us_per_msg\":%.4f,"
		       "\"rss_kib_start\":%" PRIu64 ",\"rss_kib_end\":%" PRIu64 ",\"hwm_kib\":%" PRIu64 "}",
		       (int)o->broker_pid, r->broker1.precise ? "schedstat" : "stat",
		       r->broker1.cpu_stat_s - r->broker0.cpu_stat_s, s->cpu_s,
		       n ? s->cpu_s / (double)n * 1e5 : 0,
		       n ? s->cpu_s / (double)n * 1e6 : 0, r->broker0.rss_kib, r->broker1.rss_kib,
		       r->broker1.hwm_kib);
	}
	printf(",\"bench_cpu_s\":%.6f,\"drain_gave_up\":%s,\"timed_out\":%s,\"error\":",
	       r->bench_cpu1 - r->bench_cpu0, r->drain_gave_up ? "true" : "false",
	       r->timed_out ? "true" : "false");
	if (r->failed)
		json_str(r->error);
	else
		printf("null");
	printf(",\"status\":%d,\"result\":", s->status);
	json_str(s->verdict);
	printf("}\n");
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		fprintf(stderr, "wharf-bench: warning: %u connections need %u descriptors, the limit is %lu\n",
			need - 64, need, (unsigned long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--drill"))
			return wb_drill_main(argc, argv);
	struct wb_opts o;
	if (parse_opts(&o, argc, argv) < 0)
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(o.publishers + o.subscribers + o.idle + 64);
	if (o.broker_pid) {
		struct wb_proc_sample probe;
		if (wb_proc_sample(o.broker_pid, &probe) < 0) {
			fprintf(stderr, "wharf-bench: cannot read /proc/%d/stat\n", (int)o.broker_pid);
			return EXIT_USAGE;
		}
	}
	struct wb_run r;
	if (wb_run(&r, &o) < 0) {
		fprintf(stderr, "wharf-bench: cannot set up the run (out of memory?)\n");
		wb_run_free(&r);
		return EXIT_ERROR;
	}
	struct summary s;
	summarize(&r, &s);
	if (o.json)
		report_json(&r, &s);
	else
		report_human(&r, &s);
	fflush(stdout);
	wb_run_free(&r);
	return s.status;
}
