#include "config.h"
#include "protocols/amqp/sasl.h"

#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <stdio.h>
#include <string.h>

#include "ha/redirect.h"
#include "log.h"
#include "net/conn.h"
#include "protocols/amqp/internal.h"

static void sasl_free(pn_transport_t *t)
{
}

static const char *list_mechanisms(pn_transport_t *t)
{
	struct amqp_conn *ac = pnx_sasl_get_context(t);
	return conn_cert_identified(ac->c) ? "EXTERNAL PLAIN ANONYMOUS" : "PLAIN ANONYMOUS";
}

static bool init_server(pn_transport_t *t)
{
	pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
	return true;
}

static bool init_client(pn_transport_t *t)
{
	return false;
}

static void prepare_write(pn_transport_t *t)
{
}

static bool allowed(pn_transport_t *t, const char *mech)
{
	return pnx_sasl_is_mechanism_included(t, pn_bytes(strlen(mech), mech));
}

/* PLAIN's response is authzid NUL authcid NUL password (RFC 4616): the
 * authcid into user, the password's place and length into *pw, *len. */
static bool plain_identity(const pn_bytes_t *recv, char *user, size_t cap, const char **pw,
			   size_t *pwlen)
{
	if (!recv->start) /* an init frame without a response */
		return false;
	const char *p = recv->start, *end = p + recv->size;
	const char *nul1 = memchr(p, '\0', recv->size);
	if (!nul1)
		return false;
	const char *authcid = nul1 + 1;
	const char *nul2 = memchr(authcid, '\0', (size_t)(end - authcid));
	size_t len = nul2 ? (size_t)(nul2 - authcid) : 0;
	if (!nul2 || len == 0 || len >= cap)
		return false;
	memcpy(user, authcid, len);
	user[len] = '\0';
	*pw = nul2 + 1;
	*pwlen = (size_t)(end - *pw);
	return true;
}

/* EXTERNAL's response is an authzid, or nothing (RFC 4422 appendix A):
 * the user the client asks to be, into user ("" for none). */
static bool external_identity(const pn_bytes_t *recv, char *user, size_t cap)
{
	size_t len = recv->start ? recv->size : 0;
	if (len >= cap || (len && memchr(recv->start, '\0', len)))
		return false;
	if (len)
		memcpy(user, recv->start, len);
	user[len] = '\0';
	return true;
}

/* The authenticator's answer: the outcome goes out, and reading resumes. */
static void answered(void *session, enum auth_result r)
{
	struct amqp_conn *ac = session;
	pn_transport_t *t = ac->driver.transport;
	ac->authenticating = false;
	ac->authenticated = r == AUTH_OK;
	/* A limit is not a failed login: the open that follows hears it as
	 * amqp:resource-limit-exceeded (session.c). */
	ac->limited = r == AUTH_LIMITED;
	if (r == AUTH_OK || r == AUTH_LIMITED)
		pnx_sasl_set_succeeded(t, conn_principal(ac->c), NULL);
	else
		pnx_sasl_set_failed(t);
	pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
	conn_pause_input(ac->c, false);
	amqp_schedule_flush(ac);
}

static void process_init(pn_transport_t *t, const char *mechanism, const pn_bytes_t *recv)
{
	struct amqp_conn *ac = pnx_sasl_get_context(t);
	struct conn *c = ac->c;
	struct redirect_target to;
	char user[256];
	const char *pw = NULL;
	size_t pwlen = 0;
	int rc = -1;
	if (broker_redirect_for(c, &to)) {
		/* A standby: the open that follows hears where to go. */
		pnx_sasl_set_succeeded(t, "anonymous", NULL);
		pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
		return;
	}
	if (!strcmp(mechanism, "ANONYMOUS") && allowed(t, "ANONYMOUS"))
		rc = conn_authenticate(c, NULL, "", 0, answered);
	else if (!strcmp(mechanism, "EXTERNAL") && conn_cert_identified(c) &&
		 external_identity(recv, user, sizeof(user)))
		rc = conn_authenticate(c, *user ? user : NULL, "", 0, answered);
	else if (!strcmp(mechanism, "PLAIN") && allowed(t, "PLAIN") &&
		 plain_identity(recv, user, sizeof(user), &pw, &pwlen))
		rc = conn_authenticate(c, user, pw, pwlen, answered);
	else {
		conn_log(c, LOG_INFO, "amqp: SASL %s refused: not offered or malformed", mechanism);
		char why[96];
		snprintf(why, sizeof(why), "SASL %.40s not offered or malformed", mechanism);
		conn_audit(c, "connect_failed", NULL, why);
	}
	if (rc == 0) {
		ac->authenticating = true;
		conn_pause_input(c, true);
		return;
	}
	pnx_sasl_set_failed(t);
	pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static void process_response(pn_transport_t *t, const pn_bytes_t *recv)
{
	pnx_sasl_set_failed(t); /* neither mechanism has a second step */
	pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static bool process_mechanisms(pn_transport_t *t, const char *mechs)
{
	return false;
}

static void process_challenge(pn_transport_t *t, const pn_bytes_t *recv)
{
}

static void process_outcome(pn_transport_t *t, const pn_bytes_t *recv)
{
}

static bool can_encrypt(pn_transport_t *t)
{
	return false;
}

static ssize_t max_encrypt_size(pn_transport_t *t)
{
	return 0;
}

static ssize_t no_layer(pn_transport_t *t, pn_bytes_t in, pn_bytes_t *out)
{
	return 0;
}

static const pnx_sasl_implementation mechanisms = {
	.free = sasl_free,
	.list_mechanisms = list_mechanisms,
	.init_server = init_server,
	.init_client = init_client,
	.prepare_write = prepare_write,
	.process_init = process_init,
	.process_response = process_response,
	.process_mechanisms = process_mechanisms,
	.process_challenge = process_challenge,
	.process_outcome = process_outcome,
	.can_encrypt = can_encrypt,
	.max_encrypt_size = max_encrypt_size,
	.encode = no_layer,
	.decode = no_layer,
};

void amqp_sasl_install(pn_transport_t *t, struct amqp_conn *ac)
{
	pn_sasl_t *sasl = pn_sasl(t);
	pnx_sasl_set_implementation(t, &mechanisms, ac);
	pn_sasl_set_allow_insecure_mechs(sasl, true);
	pn_sasl_allowed_mechs(sasl, "EXTERNAL PLAIN ANONYMOUS");
}
