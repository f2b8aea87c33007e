// rhea (AMQP 1.0) over a WebSocket (the ws package): attaches a receiver and
// a sender to QUEUE, sends two messages and gets them back, says "ready",
// then waits for `more` messages someone else puts on QUEUE. Prints every
// message it receives as a JSON line, in order.
//   node amqp_ws.js URL QUEUE MORE
const container = require('rhea');
const WebSocket = require('ws');
const [url, queue, more] = process.argv.slice(2);
const own = ['from rhea 0', 'from rhea 1'];
let got = 0;
const deadline = setTimeout(() => { console.error('timeout'); process.exit(2); }, 20000);

function text(body) {
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString();
  if (body && body.content) return Buffer.from(body.content).toString();
  return JSON.stringify(body);
}

// rhea's own example offers these; the broker must pick `amqp`.
const ws = container.websocket_connect(WebSocket);
const conn = container.connect({
  connection_details: ws(url, ['binary', 'AMQPWSB10', 'amqp']),
  reconnect: false,
});
conn.open_receiver({ source: queue, credit_window: 10 });
conn.on('receiver_open', () => {
  const sender = conn.open_sender(queue);
  sender.on('sendable', () => {
    while (own.length && sender.sendable()) {
      sender.send({ body: own.shift(), application_properties: { origin: 'rhea' } });
    }
  });
});
conn.on('message', (ctx) => {
  const m = ctx.message;
  console.log(JSON.stringify({ body: text(m.body), properties: m.application_properties || {} }));
  got++;
  if (got === 2) console.log('ready');
  if (got === 2 + Number(more)) {
    clearTimeout(deadline);
    conn.close();
  }
});
conn.on('connection_close', () => process.exit(got === 2 + Number(more) ? 0 : 1));
conn.on('rejected', (ctx) => { console.error('rejected ' + JSON.stringify(ctx.delivery.remote_state)); process.exit(1); });
conn.on('connection_error', (ctx) => { console.error('connection error ' + JSON.stringify(ctx.connection.error)); process.exit(1); });
conn.on('error', (e) => { console.error('error ' + e); process.exit(1); });
conn.on('disconnected', (ctx) => {
  if (got < 2 + Number(more)) { console.error('disconnected ' + (ctx.error || '')); process.exit(1); }
});
