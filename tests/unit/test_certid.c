/* The user a client certificate names (auth/certid.h), on certificates
 * built here with OpenSSL's API: CN, SAN email and DNS, and the names that
 * name no one (two CNs, a NUL inside, a character a user name cannot
 * hold, no such name at all). */
#include "config.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "auth/certid.h"
#include "tap.h"

/* A certificate (unsigned: certid reads names only) with the subject's
 * CNs and one subjectAltName entry of `san_type` holding san (len bytes),
 * or none when san is NULL. */
static X509 *cert(const char *cn1, const char *cn2, int san_type, const char *san, int len)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	if (cn1)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn1, -1,
					   -1, 0);
	if (cn2)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn2, -1,
					   -1, 0);
	if (san) {
		GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
		/* A URI first: the name sought need not be the first entry. */
		GENERAL_NAME *other = GENERAL_NAME_new();
		ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
		ASN1_STRING_set(uri, "https://example.com", -1);
		GENERAL_NAME_set0_value(other, GEN_URI, uri);
		sk_GENERAL_NAME_push(names, other);
		GENERAL_NAME *n = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, san, len);
		GENERAL_NAME_set0_value(n, san_type, s);
		sk_GENERAL_NAME_push(names, n);
		X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0);
		GENERAL_NAMES_free(names);
	}
	return x;
}

static void names(X509 *x, enum certid_kind kind, const char *want, const char *what)
{
	char *got = certid_name(x, kind);
	if (want)
		is_str(got, want, "%s", what);
	else
		ok(!got, "%s names no one (%s)", what, got ? got : "NULL");
	free(got);
}

int main(void)
{
	X509 *x = cert("alice", NULL, GEN_EMAIL, "carol@example.com", -1);
	names(x, CERTID_CN, "alice", "cn");
	names(x, CERTID_SAN_EMAIL, "carol@example.com", "san-email after a URI");
	names(x, CERTID_SAN_DNS, NULL, "san-dns without a DNS name");
	names(x, CERTID_NONE, NULL, "none");
	X509_free(x);

	x = cert("alice", "bob", GEN_DNS, "dave.devices", -1);
	names(x, CERTID_CN, NULL, "two CNs");
	names(x, CERTID_SAN_DNS, "dave.devices", "san-dns");
	X509_free(x);

	x = cert(NULL, NULL, GEN_DNS, "alice\0.evil.com", 15);
	names(x, CERTID_SAN_DNS, NULL, "a DNS name with a NUL inside");
	names(x, CERTID_CN, NULL, "a subject without CN");
	X509_free(x);

	x = cert("alice smith", NULL, GEN_EMAIL, "a:b@example.com", -1);
	names(x, CERTID_CN, NULL, "a CN with a space");
	names(x, CERTID_SAN_EMAIL, NULL, "an email with ':'");
	X509_free(x);
	return tap_done();
}
