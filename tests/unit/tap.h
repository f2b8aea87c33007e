/* Minimal TAP producer for the C unit tests: automake's tap-driver.sh counts
 * each ok/not ok line as one test. Header-only so every test is one file. */
#ifndef WHARF_TESTS_TAP_H
#define WHARF_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                          \
	do {                                                                   \
		int ok_c_ = !!(cond);                                          \
		tap_n++;                                                       \
		if (!ok_c_)                                                    \
			tap_failed++;                                          \
		printf("%sok %d - ", ok_c_ ? "" : "not ", tap_n);              \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		if (!ok_c_)                                                    \
			printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} while (0)

#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *is_g_ = (got), *is_w_ = (want);                    \
		int is_c_ = (is_g_ && is_w_) ? strcmp(is_g_, is_w_) == 0 : is_g_ == is_w_; \
		ok(is_c_, __VA_ARGS__);                                        \
		if (!is_c_)                                                    \
			printf("#   got '%s', want '%s'\n", is_g_ ? is_g_ : "(null)", \
			       is_w_ ? is_w_ : "(null)");                      \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
