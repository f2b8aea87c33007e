#include "config.h"
#include "auth/certid.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "auth/users.h"

const char *const certid_kind_names[] = { "none", "cn", "san-email", "san-dns", NULL };

/* An ASN.1 string as a user name: only when it is one whole (no NUL
 * inside to cut "alice\0.evil.com" to "alice"). */
static char *as_user(const ASN1_STRING *s)
{
	int len = ASN1_STRING_length(s);
	const unsigned char *data = ASN1_STRING_get0_data(s);
	if (len <= 0 || memchr(data, '\0', (size_t)len))
		return NULL;
	char *name = malloc((size_t)len + 1);
	if (!name)
		return NULL;
	memcpy(name, data, (size_t)len);
	name[len] = '\0';
	if (!users_name_valid(name)) {
		free(name);
		return NULL;
	}
	return name;
}

/* A subject with two CNs names no one: which would be the user is a
 * guess, and a CA may let the requester choose the second. */
static char *common_name(X509 *cert)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
		return NULL;
	return as_user(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
}

static char *alt_name(X509 *cert, int type)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	char *found = NULL;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
		if (n->type == type) {
			/* The first of its kind decides, valid or not, as
			 * RabbitMQ's ssl_cert_login_san_index 0 does. */
			found = as_user(type == GEN_EMAIL ? n->d.rfc822Name : n->d.dNSName);
			break;
		}
	}
	GENERAL_NAMES_free(names);
	return found;
}

char *certid_name(struct x509_st *cert, enum certid_kind kind)
{
	switch (kind) {
	case CERTID_CN: return common_name(cert);
	case CERTID_SAN_EMAIL: return alt_name(cert, GEN_EMAIL);
	case CERTID_SAN_DNS: return alt_name(cert, GEN_DNS);
	case CERTID_NONE: break;
	}
	return NULL;
}
