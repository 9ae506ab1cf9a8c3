// exchange.mjs: the matrix-js-sdk side of tests/jssdk_test.go, a second
// real client (Element Web's SDK with its Rust crypto, in wasm) talking to
// a mautrix-go client through the homeserver.
//
// It logs in, starts its Rust crypto and its /sync loop, joins the room it
// is invited to, sends a message (encrypted by the SDK when the room is
// encrypted), waits for the message the Go client answers with, and
// prints `STEP answered`. Then it reads commands on stdin, one a line:
// `send2 DEVICE BODY` waits until its crypto knows the Go user's device
// DEVICE (logged in after the first exchange, so learnt through
// device_lists.changed in its sync), sends BODY (encrypted for that device
// too) and prints `STEP sent2 EVENT_ID`; `done` ends. Last it prints one
// line `RESULT {...}` (JSON) with what it saw. Progress goes to stderr. It
// exits 0 when everything went through, 1 otherwise.
//
// Environment:
//   HS_URL      the homeserver's base URL
//   JS_USER     the user id to log in as; JS_PASSWORD its password
//   ROOM_ID     the room the Go client invites this user into
//   JS_BODY     the body of the message to send
//   GO_BODY     the body of the Go client's answer to wait for
//   GO_USER     the Go client's user id
//   DEADLINE_MS how long to wait for everything (default 60000)
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import * as readline from "node:readline";

const env = (name) => {
	const v = process.env[name];
	if (!v) {
		console.error(`missing environment variable ${name}`);
		process.exit(2);
	}
	return v;
};
const hsURL = env("HS_URL");
const userID = env("JS_USER");
const password = env("JS_PASSWORD");
const roomID = env("ROOM_ID");
const jsBody = env("JS_BODY");
const goBody = env("GO_BODY");
const goUser = env("GO_USER");
const deadlineMs = Number(process.env.DEADLINE_MS || 60000);

logger.setLevel(process.env.JS_DEBUG ? "debug" : "warn");
const log = (...args) => console.error("[jssdk]", ...args);

const result = { warnings: [], logged_in: false, crypto: false, joined: false, encrypted_room: false, sent: null, received: null, received_encrypted: false, errors: [] };
let client;
const finish = async (code) => {
	process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
	try {
		client?.stopClient();
	} catch {}
	// The SDK keeps timers alive; exit explicitly.
	process.exit(code);
};
setTimeout(() => {
	result.errors.push(`deadline of ${deadlineMs} ms passed`);
	finish(1);
}, deadlineMs).unref?.();

try {
	const login = await sdk.createClient({ baseUrl: hsURL }).loginRequest({
		type: "m.login.password",
		identifier: { type: "m.id.user", user: userID },
		password,
		initial_device_display_name: "matrix-js-sdk test",
	});
	result.logged_in = true;
	log("logged in as", login.user_id, "device", login.device_id);
	client = sdk.createClient({ baseUrl: hsURL, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });
	// The SDK retries GET /pushrules/ forever before its first sync; a
	// server without push rules yet gets the spec's empty rule set here
	// (and a warning in the result) so that the exchange still runs.
	const getPushRules = client.getPushRules.bind(client);
	client.getPushRules = async () => {
		try {
			return await getPushRules();
		} catch (e) {
			if (e?.errcode !== "M_UNRECOGNIZED") throw e;
			result.warnings.push("GET /pushrules/ answered M_UNRECOGNIZED: the SDK ran with empty push rules");
			return { global: { override: [], content: [], room: [], sender: [], underride: [] } };
		}
	};
	await client.initRustCrypto({ useIndexedDB: false });
	result.crypto = true;
	log("rust crypto ready");

	const answered = new Promise((resolve) => {
		client.on(sdk.RoomEvent.Timeline, async (ev, room) => {
			if (room?.roomId !== roomID || ev.getSender() === userID) return;
			if (ev.isEncrypted() || ev.getWireType() === "m.room.encrypted") {
				await client.decryptEventIfNeeded(ev);
			}
			if (ev.getType() !== "m.room.message") {
				if (ev.isDecryptionFailure()) {
					result.errors.push(`unable to decrypt ${ev.getId()}: ${ev.decryptionFailureReason}`);
				}
				return;
			}
			const body = ev.getContent().body;
			log("received", JSON.stringify(body), "encrypted:", ev.isEncrypted());
			if (body === goBody) {
				result.received = body;
				result.received_encrypted = ev.isEncrypted();
				resolve();
			}
		});
	});
	client.on(sdk.RoomMemberEvent.Membership, async (_ev, member) => {
		if (member.userId === userID && member.membership === "invite" && member.roomId === roomID) {
			log("invited, joining");
			try {
				await client.joinRoom(roomID);
			} catch (e) {
				result.errors.push(`join: ${e}`);
			}
		}
	});
	await client.startClient({ initialSyncLimit: 20 });

	// Wait until joined, with the room's state synced.
	await new Promise((resolve) => {
		const check = () => client.getRoom(roomID)?.getMyMembership() === "join";
		if (check()) return resolve();
		const iv = setInterval(() => {
			if (check()) {
				clearInterval(iv);
				resolve();
			}
		}, 50);
	});
	result.joined = true;
	result.encrypted_room = await client.getCrypto().isEncryptionEnabledInRoom(roomID);
	log("joined; encrypted:", result.encrypted_room);

	const sent = await client.sendTextMessage(roomID, jsBody);
	result.sent = sent.event_id;
	log("sent", sent.event_id);

	await answered;
	process.stdout.write("STEP answered\n");

	for await (const line of readline.createInterface({ input: process.stdin })) {
		const [cmd, device, ...rest] = line.split(" ");
		if (cmd === "done") break;
		if (cmd !== "send2") throw new Error(`unknown command ${JSON.stringify(line)}`);
		// The Go user's new device reaches the SDK's crypto through
		// device_lists.changed (and the /keys/query it triggers).
		for (;;) {
			const devices = await client.getCrypto().getUserDeviceInfo([goUser]);
			if (devices.get(goUser)?.has(device)) break;
			await new Promise((r) => setTimeout(r, 50));
		}
		result.learnt_device = device;
		const sent2 = await client.sendTextMessage(roomID, rest.join(" "));
		result.sent2 = sent2.event_id;
		process.stdout.write(`STEP sent2 ${sent2.event_id}\n`);
	}
	await finish(0);
} catch (e) {
	result.errors.push(String(e?.stack || e));
	await finish(1);
}
