/* Certificate identity ([listener] cert_identity, docs/security.md): the
 * user a verified TLS client certificate names, by its subject's CN or
 * its first subjectAltName email or DNS name. Pure: certificate in, name
 * out. Any thread. */
#ifndef WHARF_AUTH_CERTID_H
#define WHARF_AUTH_CERTID_H

struct x509_st;

enum certid_kind {
	CERTID_NONE,      /* the certificate names no user (the default) */
	CERTID_CN,        /* the subject's commonName; one only */
	CERTID_SAN_EMAIL, /* the first rfc822Name of subjectAltName */
	CERTID_SAN_DNS,   /* the first dNSName of subjectAltName */
};

/* The config's words for each kind, NULL-terminated, in enum order. */
extern const char *const certid_kind_names[];

/* The user `cert` names by `kind`, malloc'd (the caller frees), or NULL
 * when it holds no such name, holds more than one CN, or the name cannot
 * be a user name (users_name_valid: an embedded NUL, a space, a ':'). */
char *certid_name(struct x509_st *cert, enum certid_kind kind);

#endif
