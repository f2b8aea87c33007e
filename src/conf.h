/* The configuration file (conf/wharf.conf): `key = value` lines, `#` comments,
 * and sections `[listener NAME]`, `[stomp]`, `[mqtt]`, `[ha]`, `[auth]`, `[admin]`, `[audit]`,
 * `[queue PATTERN]`,
 * `[topic PATTERN]`, `[alarm NAME]`. Every mistake is reported as FILE:LINE: message.
 * docs/configuration.md lists every key. */
#ifndef WHARF_CONF_H
#define WHARF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/alarm_eval.h"
#include "router/policy.h"

/* TLS settings of a listener; unset fields fall back to the global ones. */
struct tls_config {
	char *cert, *key, *ca, *ciphers;
	int client_cert; /* enum tls_client_cert, or -1 when unset */
	int min_version; /* 12 or 13, or 0 when unset */
};

struct listener_config {
	char *name;
	char *url;
	size_t max_connections; /* 0: only the global max_connections */
	struct tls_config tls;
	int allow_anonymous; /* 1, 0, or -1 unset: true without [auth] users_file, else false */
	int cert_identity;   /* enum certid_kind (auth/certid.h); 0: none */
	char *allowed_origins; /* ws/wss only; NULL: the global ws_allowed_origins */
	int line; /* of its section header, for messages */
	struct listener_config *next;
};

enum policy_kind { POLICY_QUEUE, POLICY_TOPIC };

struct dest_config {
	enum policy_kind kind;
	char *pattern;  /* a destination name, may hold `*` and `>` */
	int auto_create; /* 1, 0, or -1 when not set */
	char **bind;    /* [topic] only: queues that receive a copy */
	size_t nbind;
	struct queue_policy policy; /* [queue] only; owns its dead_letter_queue */
	struct dest_config *next;
};

struct stomp_config {
	size_t max_frame_size;
	size_t max_headers;
	size_t max_header_length;
	unsigned heartbeat_ms;  /* what the broker offers and asks for */
	unsigned prefetch;      /* unacked window when the client sets none */
	int dialect;            /* enum stomp_dialect (protocols/stomp/dest.h) */
};

struct mqtt_config {
	size_t max_packet_size;      /* largest packet a client may send */
	unsigned receive_maximum;    /* QoS 1/2 publishes a client may have unacknowledged */
	unsigned max_inflight;       /* QoS 1/2 deliveries out to one client at once */
	unsigned topic_alias_maximum;
	unsigned max_keepalive;      /* seconds; 0 = take what the client asks */
	unsigned max_session_expiry; /* seconds; caps what a client asks */
	size_t max_queued;           /* messages held per subscription of an absent session */
	unsigned max_subscriptions;  /* filters one client session may hold; 0: max_subscriptions_per_connection */
	unsigned sys_interval_ms;    /* $SYS/broker/... publishing period; 0 = off */
};

enum ha_role { HA_NONE, HA_PRIMARY, HA_STANDBY, HA_AUTO };
enum ha_sync { HA_SYNC_REPLICATED, HA_SYNC_LOCAL };

/* [ha]: the active/standby pair (docs/ha.md). */
struct ha_config {
	int role;                /* enum ha_role; HA_NONE: a single node */
	char *node_id;           /* this node's name in logs and the arbiter */
	char *listen;            /* repl://HOST:PORT this node's link listens on */
	char *peer;              /* repl://HOST:PORT of the other node */
	char *secret;            /* shared by both nodes; the link's proof */
	int sync;                /* enum ha_sync */
	unsigned sync_timeout_ms; /* a stalled link is dropped after this */
	unsigned timeout_ms;     /* silence on the link that counts as gone */
	char *advertise;         /* space-separated client URLs of this node,
				  * for the peer's redirects; NULL: listeners */
	bool standby_listen;     /* a standby opens client ports (to redirect) */
	char *on_promote;        /* command run when this node becomes active */
	char *arbiter;           /* "none" or etcd://HOST:PORT */
	char *pair;              /* the pair's name under /wharf/ in the arbiter */
	unsigned lease_ttl_ms;
	struct tls_config tls;   /* the link's TLS; none when cert is unset */
	int line;                /* of the [ha] header, for messages */
};

/* [admin]: the admin HTTP API, /metrics and health (docs/admin-api.md). */
struct admin_config {
	char *listen;            /* http://HOST:PORT; NULL: off */
	bool allow_remote;       /* serve non-loopback clients (unsafe until
				  * users and TLS cover the admin API) */
	size_t metrics_max_destinations; /* per-destination series in /metrics */
	size_t browse_max;       /* messages one browse may return */
	bool allow_anonymous;    /* with users: loopback requests without credentials served */
	struct tls_config tls;   /* for https:// (unset keys: the top-level tls_*) */
	int line;                /* of the [admin] header, for messages */
};

/* [auth]: users and how logins are checked (docs/security.md). */
struct auth_config {
	char *users_file;           /* NULL: authentication off */
	unsigned failure_delay_ms;  /* every refusal is answered after this */
	unsigned max_failures;      /* per address within failure_window; 0: no throttle */
	unsigned failure_window_ms;
	char *acl_file;             /* access rules (auth/acl.h); NULL: everything allowed */
	char *mqtt_client_id_prefix; /* MQTT client ids must start with it (%u: the user); NULL: any */
	char *stomp_client_id_prefix; /* the same for STOMP client-id headers */
	int line;                   /* of the [auth] header, for messages */
};

/* [audit]: the audit log (util/audit.h, docs/security.md). */
struct audit_config {
	char *file; /* as written: relative to data_dir unless absolute; NULL: off */
};

/* [alarm NAME] (docs/operations.md, Alarms). */
struct alarm_config {
	char *name;             /* letters, digits, - and _: one topic level */
	char *metric;           /* as written, e.g. wharf_queue_messages{queue="orders"} */
	struct alarm_rule rule; /* owns its queue */
	bool has_threshold;
	unsigned period_ms;
	int line;               /* of its section header, for messages */
	struct alarm_config *next;
};
struct wharf_config {
	char *data_dir;
	char *log_file;
	char *user, *group;  /* who wharfd becomes once started (src/privs.h); NULL: stays */
	int log_level;
	int log_format; /* 0 text, 1 json (src/log.h) */
	size_t max_connections;       /* open client connections; 0 = no limit */
	size_t max_connection_output; /* bytes queued to one client before
				         its deliveries pause */
	size_t queue_memory_limit;    /* memory (whole messages) a queue keeps
				         before the rest waits on disk */
	size_t broker_memory_limit;   /* memory all queues' waiting messages may
				         use before every queue pages; 0: none */
	size_t topic_max_pending;     /* messages held for one non-durable
				         topic subscriber before the oldest drop */
	size_t max_transactions;      /* open transactions per connection
				         (STOMP, AMQP) */
	size_t max_transaction_bytes; /* message bytes one connection's open
				         transactions hold together */
	unsigned shutdown_grace_ms;
	unsigned drop_log_interval_ms; /* 0: drops are not logged */
	unsigned handshake_timeout_ms; /* accept to the protocol's handshake; 0 = none */
	unsigned frame_timeout_ms;     /* a started frame to its end; 0 = none */
	int sync;                     /* enum journal_sync */
	unsigned sync_batch_delay_ms; /* sync = batch: at most one fsync per this */
	int on_corruption;            /* enum journal_on_corruption */
	size_t journal_segment_size;
	size_t ws_max_message;        /* largest WebSocket message a client may send */
	char *ws_allowed_origins;     /* space-separated Origin values, "*" any; NULL: same origin only */
	/* Connection limits (net/limits.h); 0: none. */
	size_t max_connections_per_user;
	size_t max_connections_per_address;
	unsigned max_new_connections_per_address; /* per second */
	/* STOMP subscriptions, AMQP receiving links, MQTT filters (unless
	 * [mqtt] max_subscriptions_per_client says otherwise) */
	unsigned max_subscriptions_per_connection;
	/* Deliveries awaiting the client's ack over all of a connection's
	 * subscriptions; past it dispatch to the connection pauses. */
	unsigned max_unacked_per_connection;
	struct tls_config tls;   /* defaults for every TLS listener */
	struct stomp_config stomp;
	struct mqtt_config mqtt;
	struct ha_config ha;
	struct admin_config admin;
	struct auth_config auth;
	struct audit_config audit;
	struct listener_config *listeners;
	struct dest_config *dests;
	struct alarm_config *alarms; /* in the file's order */
};

/* A config with every default and no listeners; NULL on out of memory.
 * Free with config_free(). */
struct wharf_config *config_new(void);
void config_free(struct wharf_config *cfg);

/* Reads `path` into cfg, on top of what cfg holds. On error returns -1 and
 * writes "FILE:LINE: message" into err. */
int config_load(struct wharf_config *cfg, const char *path, char *err, size_t errlen);
/* The whole of a text file, malloc'd; NULL with "FILE: reason" in err
 * when it cannot be read or holds a NUL byte. */
char *config_read_text(const char *path, char *err, size_t errlen);
/* Parses text as if it were a file named `name` (unit tests, --check-config). */
int config_parse(struct wharf_config *cfg, const char *name, const char *text, char *err,
		 size_t errlen);

/* Appends a listener; takes copies of the strings. -1 on out of memory. */
int config_add_listener(struct wharf_config *cfg, const char *name, const char *url);
/* Drops every listener (for --listen, which replaces the file's). */
void config_clear_listeners(struct wharf_config *cfg);
/* Whether the listener lets clients in without a user name: its
 * allow_anonymous, or by default true only without a users file. */
bool config_allow_anonymous(const struct wharf_config *cfg, const struct listener_config *l);

#endif
