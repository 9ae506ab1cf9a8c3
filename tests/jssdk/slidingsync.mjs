// slidingsync.mjs: the matrix-js-sdk side of TestSlidingSyncJSSDK
// (tests/slidingsync_jssdk_test.go). The SDK's own sliding sync client
// (SlidingSync, driven by MatrixClient.startClient({slidingSync})) syncs
// the user's rooms through simplified sliding sync (MSC4186).
//
// It logs in, starts the client with one list ("all_rooms", the first 20
// rooms) and prints `STEP ready {"count": N, "rooms": [...]}` once the
// first response is processed (rooms: those the client knows). Then it
// reads commands on stdin, one a line:
//   `expect ROOM BODY`  waits for a live message BODY in ROOM, prints
//                       `STEP got ROOM`;
//   `subscribe ROOM N`  subscribes to ROOM (outside the list's range),
//                       waits until the client holds N messages of it,
//                       prints `STEP subscribed BODIES` (JSON list);
//   `done`              ends.
// Last it prints `RESULT {...}` (JSON). Progress goes to stderr.
//
// Environment: HS_URL, JS_USER, JS_PASSWORD, DEADLINE_MS (default 60000).
import * as sdk from "matrix-js-sdk";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";
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
const deadlineMs = Number(process.env.DEADLINE_MS || 60000);

logger.setLevel(process.env.JS_DEBUG ? "debug" : "warn");
const log = (...args) => console.error("[jssdk-ss]", ...args);

const result = { responses: 0, errors: [] };
let client;
const finish = (code) => {
	process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
	try {
		client?.stopClient();
	} catch {}
	process.exit(code);
};
setTimeout(() => {
	result.errors.push(`deadline of ${deadlineMs} ms passed`);
	finish(1);
}, deadlineMs).unref?.();

// waiters are checked after every response and every timeline event.
const waiters = new Set();
const check = () => {
	for (const w of waiters) {
		if (w.cond()) {
			waiters.delete(w);
			w.resolve();
		}
	}
};
const until = (cond) => new Promise((resolve) => {
	const w = { cond, resolve };
	waiters.add(w);
	check();
});
const messages = (roomId) => {
	const room = client.getRoom(roomId);
	if (!room) return [];
	return room.getLiveTimeline().getEvents().filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);
};

try {
	const login = await sdk.createClient({ baseUrl: hsURL }).loginRequest({
		type: "m.login.password",
		identifier: { type: "m.id.user", user: userID },
		password,
		initial_device_display_name: "matrix-js-sdk sliding sync test",
	});
	log("logged in as", login.user_id, "device", login.device_id);
	client = sdk.createClient({ baseUrl: hsURL, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id });

	const lists = new Map([["all_rooms", {
		ranges: [[0, 19]],
		timeline_limit: 1,
		required_state: [["m.room.name", ""], ["m.room.create", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.room.encryption", ""]],
	}]]);
	const ss = new SlidingSync(hsURL, lists, { timeline_limit: 10, required_state: [["*", "*"]] }, client, 10000);
	let count = -1;
	ss.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
		if (err) {
			log("sliding sync error", err?.httpStatus, err?.errcode, String(err));
			result.errors.push(`sliding sync: ${err?.httpStatus} ${err?.errcode} ${err}`);
		}
		if (state === SlidingSyncState.Complete && resp) {
			result.responses++;
			if (resp.lists?.all_rooms) count = resp.lists.all_rooms.count;
			setTimeout(check, 0);
		}
	});
	client.on(sdk.RoomEvent.Timeline, () => setTimeout(check, 0));
	await client.startClient({ slidingSync: ss });

	await until(() => result.responses > 0 && count >= 0);
	process.stdout.write("STEP ready " + JSON.stringify({ count, rooms: client.getRooms().map((r) => r.roomId) }) + "\n");

	const rl = readline.createInterface({ input: process.stdin });
	for await (const line of rl) {
		const [cmd, ...rest] = line.split(" ");
		if (cmd === "expect") {
			const [roomId, ...body] = rest;
			const want = body.join(" ");
			await until(() => messages(roomId).includes(want));
			process.stdout.write(`STEP got ${roomId}\n`);
		} else if (cmd === "subscribe") {
			const [roomId, n] = rest;
			ss.modifyRoomSubscriptions(new Set([roomId]));
			await until(() => messages(roomId).length >= Number(n));
			process.stdout.write("STEP subscribed " + JSON.stringify(messages(roomId)) + "\n");
		} else if (cmd === "done") {
			break;
		}
	}
	finish(result.errors.length ? 1 : 0);
} catch (e) {
	result.errors.push(String(e?.stack || e));
	finish(1);
}
