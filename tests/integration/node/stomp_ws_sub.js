// @stomp/stompjs over a WebSocket (the ws package): subscribes, says "ready",
// prints each MESSAGE as a JSON line until it has `count` of them.
//   node stomp_ws_sub.js URL DESTINATION COUNT
const { Client } = require('@stomp/stompjs');
const WebSocket = require('ws');
const [url, dest, count] = process.argv.slice(2);
let got = 0;
const deadline = setTimeout(() => { console.error('timeout'); process.exit(2); }, 20000);
const client = new Client({
  webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
  reconnectDelay: 0,
  heartbeatIncoming: 0,
  heartbeatOutgoing: 0,
  onConnect: () => {
    client.subscribe(dest, (m) => {
      console.log(JSON.stringify({ body: m.body, headers: m.headers }));
      if (++got >= Number(count)) {
        clearTimeout(deadline);
        client.deactivate().then(() => process.exit(0));
      }
    });
    // A receipt round trip: the subscription is in place once it returns.
    client.watchForReceipt('sub-ready', () => console.log('ready'));
    client.publish({ destination: '/queue/ws-sync', body: 'sync', headers: { receipt: 'sub-ready' } });
  },
  onStompError: (f) => { console.error('STOMP ERROR ' + f.headers.message); process.exit(1); },
  onWebSocketError: (e) => { console.error('ws error ' + e.message); process.exit(1); },
});
client.activate();
