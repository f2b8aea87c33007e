// MQTT.js over a WebSocket: subscribes, says "ready" on stdout, then prints
// each message it receives as a JSON line until it has `count` of them.
//   node mqtt_ws_sub.js URL TOPIC COUNT
const mqtt = require('mqtt');
const [url, topic, count] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
let got = 0;
const deadline = setTimeout(() => { console.error('timeout'); process.exit(2); }, 20000);
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) { console.error(err); process.exit(1); }
    console.log('ready');
  });
});
client.on('message', (t, payload, packet) => {
  console.log(JSON.stringify({ topic: t, payload: payload.toString(), qos: packet.qos,
    user: packet.properties && packet.properties.userProperties }));
  if (++got >= Number(count)) {
    clearTimeout(deadline);
    client.end(false, {}, () => process.exit(0));
  }
});
client.on('error', (e) => { console.error(String(e)); process.exit(1); });
