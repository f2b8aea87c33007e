#!/bin/bash
# MQTT: Wharf against Mosquitto, same machine, same load generator.
#
#   bench/mqtt_vs_mosquitto.sh [BUILD_DIR]          (default: build)
#
# Starts build/src/wharfd and mosquitto (foreground, its own temporary
# config, persistence off) on free 127.0.0.1 ports, runs the same wharf-bench
# scenarios against each with --broker-pid, ROUNDS times (interleaved, so a
# drift of the machine hits both), stops each broker by PID and prints a table
# of median and spread (half the min-max range, in % of the median) of
# delivered msg/s, broker CPU us per delivered message and p99 latency.
#
# Environment: ROUNDS (3), COUNT (100000 msg for 1 -> 1), FANOUT_COUNT (50000
# for 1 -> 10), RATE_COUNT (20000 at 5000 msg/s), PIN (1: broker on the last
# CPU, wharf-bench on the first), KEEP (1: keep the temporary directory with
# the raw JSON lines and broker logs), WHARF_BENCH (a wharf-bench binary;
# default BUILD_DIR/tools/wharf-bench/wharf-bench, else built here with cc -O2).
# The whole run is bounded: a round that would pass LIMIT seconds (270) is
# skipped.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
build=$(cd "$build" && pwd) || exit 2
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-100000}
FANOUT_COUNT=${FANOUT_COUNT:-50000}
RATE_COUNT=${RATE_COUNT:-20000}
LIMIT=${LIMIT:-270}
PIN=${PIN:-1}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

t0=$(date +%s)
tmp=$(mktemp -d /tmp/wharf-mqtt-bench.XXXXXX)
wharf_pid='' mosq_pid=''

stop() { # PID NAME
	local pid=$1 _
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	echo "$2 (pid $pid) ignored SIGTERM: killing it" >&2
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

cleanup() {
	stop "$wharf_pid" wharfd
	stop "$mosq_pid" mosquitto
	if [ "${KEEP:-0}" = 1 ]; then echo "raw results and logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "mqtt_vs_mosquitto: $*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------
wharfd=$build/src/wharfd
[ -x "$wharfd" ] || die "$wharfd not built (cd build && make)"
cflags=$(sed -n 's/^CFLAGS = //p' "$build/Makefile")
san=$(sed -n 's/^SAN_CFLAGS = //p' "$build/Makefile")
case " $cflags " in *" -O2 "*|*" -O3 "*) ;; *) echo "warning: $build is built with CFLAGS='$cflags', not -O2" >&2 ;; esac
[ -z "$san" ] || echo "warning: $build is built with sanitizers ($san): numbers are not representative" >&2
command -v mosquitto >/dev/null || die "mosquitto not installed (apt-get install mosquitto)"

bench=${WHARF_BENCH:-$build/tools/wharf-bench/wharf-bench}
if [ ! -x "$bench" ]; then
	bench=$tmp/wharf-bench
	# shellcheck disable=SC2046 # pkg-config prints several words
	cc -std=c11 -O2 -D_GNU_SOURCE -I"$build" -o "$bench" "$here"/tools/wharf-bench/*.c \
		$(pkg-config --cflags --libs libevent) -lm || die "cannot build wharf-bench"
fi

ncpu=$(nproc)
pin_broker=() pin_bench=()
if [ "$PIN" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
	pin_broker=(taskset -c $((ncpu - 1)))
	pin_bench=(taskset -c 0)
fi

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT PID
	local _
	for _ in $(seq 100); do
		kill -0 "$2" 2>/dev/null || return 1
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# ---- brokers ----------------------------------------------------------------
mkdir -p "$tmp/wharf" "$tmp/mosquitto"
"${pin_broker[@]}" "$wharfd" --data-dir "$tmp/wharf" --listen mqtt://127.0.0.1:0 \
	>"$tmp/wharf.log" 2>&1 &
wharf_pid=$!
wharf_port=
for _ in $(seq 100); do
	wharf_port=$(sed -n 's/.*listening mqtt 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/wharf.log")
	[ -n "$wharf_port" ] && break
	kill -0 "$wharf_pid" 2>/dev/null || break
	sleep 0.05
done
[ -n "$wharf_port" ] || { cat "$tmp/wharf.log" >&2; die "wharfd did not start"; }

mosq_port=$(free_port)
cat >"$tmp/mosquitto/mosquitto.conf" <<EOF
listener $mosq_port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
EOF
"${pin_broker[@]}" mosquitto -c "$tmp/mosquitto/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
mosq_pid=$!
wait_port "$mosq_port" "$mosq_pid" || { cat "$tmp/mosquitto.log" >&2; die "mosquitto did not start"; }

echo "wharfd    $("$wharfd" --version 2>&1 | head -1) pid $wharf_pid port $wharf_port ($cflags)"
echo "mosquitto $(mosquitto -h 2>&1 | sed -n 's/^mosquitto version //p') pid $mosq_pid port $mosq_port (defaults, persistence false)"
echo "machine   $ncpu CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)$([ ${#pin_broker[@]} -gt 0 ] && echo ", broker on CPU $((ncpu - 1)), wharf-bench on CPU 0")"
# The latency floor of this machine: how late a sleeping process wakes up.
# Each message through a broker costs at least two such wake-ups at 5k/s.
"${pin_bench[@]}" "$PY" - <<'EOF'
import time
late = []
for _ in range(5000):
    t = time.perf_counter_ns(); time.sleep(0.0002); late.append(time.perf_counter_ns() - t - 200000)
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))] / 1000
print("floor     a 200 us sleep wakes late by p50 %.0f us, p99 %.0f us, p99.9 %.0f us" % (q(.5), q(.99), q(.999)))
EOF
echo

# ---- scenarios --------------------------------------------------------------
# name | wharf-bench arguments
scenarios=(
	"qos0 1->1|--qos 0 --count $COUNT"
	"qos1 1->1|--qos 1 --count $COUNT"
	"qos0 1->10|--qos 0 --subscribers 10 --count $FANOUT_COUNT"
	"qos1 1->10|--qos 1 --subscribers 10 --count $FANOUT_COUNT"
	"qos1 5k/s|--qos 1 --rate 5000 --count $RATE_COUNT"
)
brokers=("wharf|$wharf_port|$wharf_pid" "mosquitto|$mosq_port|$mosq_pid")

results=$tmp/results.jsonl
: >"$results"
for round in $(seq "$ROUNDS"); do
	for sc in "${scenarios[@]}"; do
		name=${sc%%|*} args=${sc#*|}
		for b in "${brokers[@]}"; do
			IFS='|' read -r bname port pid <<<"$b"
			if [ $(($(date +%s) - t0)) -ge "$LIMIT" ]; then
				echo "time limit reached: skipping the rest of round $round" >&2
				break 3
			fi
			[ -t 2 ] && printf '\r\033[Kround %d/%d  %-10s %s' "$round" "$ROUNDS" "$name" "$bname" >&2
			# shellcheck disable=SC2086
			line=$(timeout 120 "${pin_bench[@]}" "$bench" --url "mqtt://127.0.0.1:$port" --size 64 \
				--broker-pid "$pid" --json --quiet --timeout 100 \
				--client-id "b$round$bname" $args 2>>"$tmp/bench.err")
			rc=$?
			[ -n "$line" ] || line='{"result":"NO OUTPUT"}'
			"$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(scenario=sys.argv[2], broker_name=sys.argv[3], round=int(sys.argv[4]), rc=int(sys.argv[5])); print(json.dumps(d))' \
				"$line" "$name" "$bname" "$round" "$rc" >>"$results"
			sleep 0.3
		done
	done
done
[ -t 2 ] && printf '\r\033[K' >&2

for b in "${brokers[@]}"; do
	IFS='|' read -r bname port pid <<<"$b"
	kill -0 "$pid" 2>/dev/null || echo "warning: $bname (pid $pid) died during the run" >&2
	echo "$bname peak RSS: $(sed -n 's/^VmHWM:\s*//p' /proc/"$pid"/status 2>/dev/null)"
done
echo

"$PY" - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
scen, brok = [], []
for r in rows:
    if r["scenario"] not in scen: scen.append(r["scenario"])
    if r["broker_name"] not in brok: brok.append(r["broker_name"])

def cell(vals, fmt):
    vals = [v for v in vals if v is not None]
    if not vals: return "-"
    m = statistics.median(vals)
    spread = (max(vals) - min(vals)) / 2 / m * 100 if m else 0
    return (fmt % m) + " ±%.0f%%" % spread

hdr = "%-11s %-10s %18s %16s %16s  %s" % ("scenario", "broker", "delivered msg/s", "broker us/msg", "p99 latency", "runs")
print(hdr); print("-" * len(hdr))
for s in scen:
    for b in brok:
        rs = [r for r in rows if r["scenario"] == s and r["broker_name"] == b]
        ok = [r for r in rs if r.get("status") == 0]
        bad = len(rs) - len(ok)
        rate = [r.get("received_per_s") for r in rs]
        cpu = [r.get("broker", {}).get("cpu_us_per_msg") for r in rs]
        p99 = [r.get("latency_us", {}).get("p99") for r in rs]
        p99s = [v / 1000 for v in p99 if v is not None]
        lat = cell(p99s, "%.3f ms") if p99s and statistics.median(p99s) >= 1 else cell(p99, "%.0f us")
        note = "%d ok" % len(ok)
        if bad:
            why = sorted({"%s%s" % (r.get("result"), " missing %d" % r["missing"] if r.get("missing") else "") for r in rs if r.get("status") != 0})
            note += ", %d FAILED (%s)" % (bad, "; ".join(why))
        print("%-11s %-10s %18s %16s %16s  %s" % (s, b, cell(rate, "%.0f"), cell(cpu, "%.2f"), lat, note))
    print()
print("delivered msg/s: deliveries to all subscribers per second (1 -> 10 counts each copy);")
print("broker us/msg: broker CPU (all threads, user+system, from /proc) over the message flow")
print("per delivered message; p99: publish -> delivery latency, which at full speed is")
print("mostly queueing; the 5k/s row is the latency measure. ± is half the min-max range.")
EOF
echo "total time: $(($(date +%s) - t0)) s"
