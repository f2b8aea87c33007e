/* libFuzzer target for the STOMP session (protocols/stomp), not only its
 * codec: two clients on one router send what the input says, in pieces,
 * with heart-beat timers fired and deliveries, acks, transactions, durable
 * subscriptions and temp queues of one meeting the other's. The harness
 * (session_harness.h) stubs the connection functions and the store's
 * records. At the end every subscription and temp queue must be gone, and
 * AddressSanitizer reports what leaked. */
#include "config.h"

#include <stdio.h>

#include "protocols/stomp/dest.h"
#include "protocols/stomp/session.h"
#include "tests/fuzz/session_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool first;
	fuzz_once(&first);
	struct wharf_config *cfg = fuzz_cfg;
	if (first) {
		fuzz_handshake_answer = "CONNECTED\n";
		cfg->stomp.heartbeat_ms = 1000;
		cfg->max_transactions = 4;
		cfg->max_transaction_bytes = 4096;
	}
	if (size < 3)
		return 0;
	/* The ActiveMQ dialect of destinations in inputs that ask for it. */
	cfg->stomp.dialect = fuzz_option(data) ? STOMP_DIALECT_ACTIVEMQ : STOMP_DIALECT_BOTH;
	struct broker b = fuzz_broker();
	unsigned long first_id = fuzz_next_id + 1;
	fuzz_run(&b, &stomp_proto, data, size);
	CHECK(router_stats(b.router)->subscriptions == 0);
	for (unsigned long id = first_id; id <= fuzz_next_id; id++)
		for (int i = 1; i <= 16; i++) {
			char temp[64];
			snprintf(temp, sizeof(temp), "wharf.temp.%lu.%d", id, i);
			CHECK(!router_find_queue(b.router, temp));
		}
	router_free(b.router);
	fuzz_records_clear();
	return 0;
}
