#include "config.h"
#include "util/utf8.h"

#include <stdint.h>

bool utf8_valid(const void *str, size_t n)
{
	const uint8_t *s = str;
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			if (c == 0)
				return false;
			i++;
			continue;
		}
		size_t more;
		uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c < 0xC2) {
			return false; /* a continuation byte, or an overlong 2-byte form */
		} else if (c < 0xE0) {
			more = 1;
		} else if (c < 0xF0) {
			more = 2;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* U+D800..U+DFFF, surrogates */
		} else if (c < 0xF5) {
			more = 3;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* past U+10FFFF */
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}

size_t utf8_whole(const char *s, size_t n)
{
	size_t start = n;
	while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
		start--;
	if (start == 0)
		return n;
	unsigned char lead = (unsigned char)s[start - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return n - (start - 1) < need ? start - 1 : n;
}
