// A bridge built on matrix-appservice-bridge, for tests/asbridge_test.go:
// it starts listening for the homeserver's transactions, has its user
// @js_alice join the room given on the command line and send a message,
// then waits for a message from a Matrix user in that room. It prints one
// line per step (READY, SENT <event id>, RECEIVED <json>) and exits 0 once
// it has received, 1 on error or after 60 seconds.
//
// usage: node bridge.mjs HOMESERVER_URL REGISTRATION_FILE PORT ROOM_ID
import { Bridge } from "matrix-appservice-bridge";

const [hsURL, registration, port, roomId] = process.argv.slice(2);
const domain = "test.local";
const jsUser = `@js_alice:${domain}`;
const sent = "Hello from matrix-appservice-bridge";

const fail = (msg) => {
  console.log(`ERROR ${msg}`);
  process.exit(1);
};
setTimeout(() => fail("nothing received within 60 s"), 60_000).unref();

let bridge;
bridge = new Bridge({
  homeserverUrl: hsURL,
  domain,
  registration,
  disableStores: true,
  controller: {
    onUserQuery: () => ({}),
    onEvent: async (request) => {
      const ev = request.getData();
      if (ev.type !== "m.room.message" || ev.room_id !== roomId || ev.sender === jsUser) {
        return;
      }
      console.log(`RECEIVED ${JSON.stringify({ sender: ev.sender, body: ev.content?.body, event_id: ev.event_id })}`);
      await bridge.close();
      process.exit(0);
    },
  },
});

try {
  await bridge.run(Number(port));
  console.log("READY");
  const intent = bridge.getIntent(jsUser);
  await intent.join(roomId);
  const res = await intent.sendText(roomId, sent);
  console.log(`SENT ${res.event_id}`);
} catch (err) {
  fail(err?.stack ?? String(err));
}
