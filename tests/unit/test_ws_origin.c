/* Which Origin values a WebSocket listener admits (protocols/ws/origin.h):
 * the request's own host and port with ports left out or written, IPv6
 * hosts, and the near misses a hostile page could try. */
#include "config.h"

#include <string.h>

#include "protocols/ws/origin.h"
#include "tap.h"

int main(void)
{
	ok(ws_same_origin("http://127.0.0.1:61619", "127.0.0.1:61619"), "same host and port");
	ok(ws_same_origin("https://127.0.0.1:61619", "127.0.0.1:61619"), "https over ws (paho)");
	ok(ws_same_origin("http://Broker.Example", "broker.example:80"), "default port, case");
	ok(ws_same_origin("https://broker.example:443", "broker.example"), "443 written on one side");
	ok(ws_same_origin("http://[::1]:8080", "[::1]:8080"), "IPv6 host");
	ok(!ws_same_origin("http://[::1]:8080", "[::2]:8080"), "another IPv6 host");
	ok(!ws_same_origin("http://127.0.0.1:61618", "127.0.0.1:61619"), "another port");
	ok(!ws_same_origin("http://127.0.0.1", "127.0.0.1:61619"), "port 80 against 61619");
	ok(!ws_same_origin("http://broker.example.evil:80", "broker.example:80"), "a longer host");
	ok(!ws_same_origin("http://broker.exampl", "broker.example"), "a shorter host");
	ok(!ws_same_origin("null", "127.0.0.1:61619"), "null");
	ok(!ws_same_origin("file://", "127.0.0.1"), "another scheme");
	ok(!ws_same_origin("http://127.0.0.1:61619/", "127.0.0.1:61619"), "a path");
	ok(!ws_same_origin("http://127.0.0.1:99999", "127.0.0.1:99999"), "a port past 65535");
	ok(!ws_same_origin("http://127.0.0.1:", "127.0.0.1:"), "an empty port");
	ok(!ws_same_origin("http://", ""), "no host");
	ok(!ws_same_origin("http://127.0.0.1:61619", ""), "no Host header");
	ok(ws_origin_listed("https://a.example http://b.example:8080", "http://b.example:8080"),
	   "listed second");
	ok(ws_origin_listed("https://a.example,https://c.example", "https://c.example"), "commas");
	ok(!ws_origin_listed("https://a.example", "https://a.example.evil"), "a longer origin");
	ok(!ws_origin_listed("https://a.example", "https://a.exampl"), "a shorter origin");
	ok(!ws_origin_listed("", "https://a.example"), "empty list");
	ok(!ws_origin_listed("https://a.example", ""), "empty origin");
	ok(ws_origin_listed("https://a.example *", "null"), "star");
	ok(!ws_origin_listed("*x", "null"), "a star inside a word is no star");
	size_t n;
	const char *h = ws_authority_host("[::1]:8161", &n);
	ok(h && n == 3 && !strncmp(h, "::1", 3), "the host of [::1]:8161 is ::1");
	h = ws_authority_host("localhost", &n);
	ok(h && n == 9, "a Host without a port");
	ok(!ws_authority_host("[::1", &n), "an unclosed bracket");
	ok(!ws_authority_host("evil.example:x", &n), "a port that is no number");
	ok(!ws_authority_host(":8161", &n), "no host");
	return tap_done();
}
