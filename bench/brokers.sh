# Sourced by bench/run-suite and bench/clients.py: starting RabbitMQ and
# ActiveMQ on free 127.0.0.1 ports with their own config and data under
# $tmp, and the helpers they need. The caller defines PY (a python3), tmp,
# the associative arrays pid and port (port[BROKER,PROTOCOL]), the array
# pids ("PID:NAME", which the caller stops in reverse order), pin_broker
# (a command prefix, maybe empty) and die. The brokers' output goes to
# files, never to the caller's standard output.
# shellcheck shell=bash

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # PORT PID SECONDS
	local _
	for _ in $(seq $(($3 * 10))); do
		kill -0 "$2" 2>/dev/null || return 1
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

start_rabbitmq() {
	local d=$tmp/rabbitmq
	mkdir -p "$d/home" "$d/mnesia" "$d/log"
	port[rabbitmq,amqp]=$(free_port) port[rabbitmq,mqtt]=$(free_port) port[rabbitmq,stomp]=$(free_port)
	local epmd_port dist_port
	epmd_port=$(free_port) dist_port=$(free_port)
	cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:${port[rabbitmq,amqp]}
mqtt.listeners.tcp.default = 127.0.0.1:${port[rabbitmq,mqtt]}
stomp.listeners.tcp.default = 127.0.0.1:${port[rabbitmq,stomp]}
mqtt.allow_anonymous = true
loopback_users = none
log.console = false
log.file.level = warning
EOF
	echo '[rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_amqp1_0].' >"$d/enabled_plugins"
	# Its own epmd, on its own port, so that nothing outlives the suite.
	epmd -port "$epmd_port" -address 127.0.0.1 </dev/null >"$d/epmd.log" 2>&1 &
	pids+=("$!:epmd")
	# RUNNING_UNDER_SYSTEMD: the script execs the VM, so $! is beam's PID.
	# +sbwt none: schedulers do not spin while idle, which would otherwise
	# count as broker CPU and steal the other brokers' core.
	env HOME="$d/home" RUNNING_UNDER_SYSTEMD=true ERL_EPMD_PORT="$epmd_port" \
		RABBITMQ_NODENAME="wharfsuite$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="${port[rabbitmq,amqp]}" RABBITMQ_DIST_PORT="$dist_port" \
		RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_MNESIA_BASE="$d/mnesia" \
		RABBITMQ_LOG_BASE="$d/log" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
		RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins" RABBITMQ_PID_FILE="$d/rabbit.pid" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
		"${pin_broker[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$d/out.log" 2>&1 &
	pid[rabbitmq]=$!
	pids+=("$!:rabbitmq")
	rabbit_ctl=(env HOME="$d/home" ERL_EPMD_PORT="$epmd_port" /usr/lib/rabbitmq/bin/rabbitmqctl
		-n "wharfsuite$$@localhost")
	wait_port "${port[rabbitmq,stomp]}" "${pid[rabbitmq]}" 90 ||
		{ tail -20 "$d/out.log" >&2; die "rabbitmq did not start"; }
	wait_port "${port[rabbitmq,mqtt]}" "${pid[rabbitmq]}" 30 || die "rabbitmq: no MQTT listener"
}

start_activemq() {
	local d=$tmp/activemq
	mkdir -p "$d/conf" "$d/data" "$d/lib"
	port[activemq,mqtt]=$(free_port) port[activemq,stomp]=$(free_port)
	# Its MQTT connector needs the MQTT codec, which Debian ships apart: the
	# instance's own lib folder (ACTIVEMQ_BASE/lib) is on its class path.
	ln -s /usr/share/java/mqtt-client.jar /usr/share/java/hawtdispatch.jar \
		/usr/share/java/hawtdispatch-transport.jar "$d/lib/"
	cat >"$d/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="wharfsuite"
          dataDirectory="$d/data" advisorySupport="false" schedulerSupport="false">
    <persistenceAdapter><kahaDB directory="$d/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp+nio://127.0.0.1:${port[activemq,stomp]}"/>
      <transportConnector name="mqtt" uri="mqtt+nio://127.0.0.1:${port[activemq,mqtt]}"/>
    </transportConnectors>
  </broker>
</beans>
EOF
	# What Debian's /usr/bin/activemq runs, without its user switch and pid files.
	"${pin_broker[@]}" java -Xms512M -Xmx512M -Dorg.apache.activemq.UseDedicatedTaskRunner=true \
		--add-reads=java.xml=java.logging --add-opens java.base/java.lang=ALL-UNNAMED \
		--add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
		--add-opens java.base/java.security=ALL-UNNAMED \
		--add-opens java.base/java.util.concurrent=ALL-UNNAMED \
		-Dactivemq.home=/usr/share/activemq \
		-Dactivemq.base="$d" -Dactivemq.conf="$d/conf" -Dactivemq.data="$d/data" \
		-jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$d/conf/activemq.xml" \
		</dev/null >"$d/out.log" 2>&1 &
	pid[activemq]=$!
	pids+=("$!:activemq")
	wait_port "${port[activemq,mqtt]}" "${pid[activemq]}" 90 ||
		{ tail -20 "$d/out.log" >&2; die "activemq did not start"; }
}
