package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestFederationSynapseShapedTransaction replays a full transaction as
// Synapse sends one (its federation sender batches up to 50 PDUs and 100
// EDUs): 50 chained messages of bob's, then 40 to-device messages for
// alice's device, typing notices, read receipts, device-list updates with
// stream_id/prev_id chains and keys, and presence, each EDU in the shape
// Synapse's code builds it. Every PDU is accepted and in the timeline in
// order; alice's device gets each to-device message once; bob's typing
// and receipt reach alice's sync, and so does the change of his devices.
func TestFederationSynapseShapedTransaction(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, _, alice, bob, room := publicRoomOnA(t, f)
		aliceSync, _ := newSyncer(t, alice, "")

		prev := stateEventID(t, a, alice, room, "m.room.member", bob.UserID.String())
		auth := []string{stateEventID(t, a, alice, room, "m.room.power_levels", ""), prev}
		key := f.signingKey(t, fedB)
		var pdus []any
		var ids []id.EventID
		for i := 0; i < 50; i++ {
			pdu := buildPDU(t, fedB, key, room, bob.UserID, "m.room.message", nil,
				map[string]string{"msgtype": "m.text", "body": fmt.Sprintf("m%02d", i)}, []string{prev}, auth)
			pdus = append(pdus, json.RawMessage(pdu.JSON()))
			ids = append(ids, id.EventID(pdu.EventID()))
			prev = pdu.EventID()
		}
		now := time.Now().UnixMilli()
		var edus []any
		edu := func(typ string, content any) {
			edus = append(edus, map[string]any{"edu_type": typ, "content": content})
		}
		for i := 0; i < 40; i++ {
			edu("m.direct_to_device", map[string]any{"sender": bob.UserID, "type": "org.example.ping", "message_id": fmt.Sprintf("msg%02d", i),
				"messages": map[string]any{alice.UserID.String(): map[string]any{alice.DeviceID.String(): map[string]any{"n": i}}}})
		}
		for i := 0; i < 20; i++ {
			edu("m.typing", map[string]any{"room_id": room, "user_id": bob.UserID, "typing": i%2 == 1})
		}
		for i := 30; i < 50; i++ {
			edu("m.receipt", map[string]any{room.String(): map[string]any{"m.read": map[string]any{
				bob.UserID.String(): map[string]any{"event_ids": []id.EventID{ids[i]}, "data": map[string]any{"ts": now + int64(i)}}}}})
		}
		for i := 1; i <= 10; i++ {
			prevIDs := []int{}
			if i > 1 {
				prevIDs = []int{i - 1}
			}
			dev := fmt.Sprintf("BOBDEV%d", i)
			edu("m.device_list_update", map[string]any{"user_id": bob.UserID, "device_id": dev, "device_display_name": "Synapse device",
				"stream_id": i, "prev_id": prevIDs, "deleted": false,
				"keys": map[string]any{"user_id": bob.UserID, "device_id": dev, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
					"keys": map[string]string{"curve25519:" + dev: "x", "ed25519:" + dev: "y"}, "signatures": map[string]any{}}})
		}
		for i := 0; i < 10; i++ {
			edu("m.presence", map[string]any{"push": []any{map[string]any{"user_id": bob.UserID, "presence": "online",
				"last_active_ago": 1000 * i, "currently_active": true, "status_msg": "busy"}}})
		}
		if len(pdus) != 50 || len(edus) != 100 {
			t.Fatalf("built %d PDUs and %d EDUs", len(pdus), len(edus))
		}
		status, body := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/1700000000000",
			map[string]any{"origin": fedB, "origin_server_ts": now, "pdus": pdus, "edus": edus})
		if status != 200 {
			t.Fatalf("send: %d %v", status, body)
		}
		results, _ := body["pdus"].(map[string]any)
		for _, e := range ids {
			r, ok := results[e.String()].(map[string]any)
			if msg, _ := r["error"].(string); !ok || msg != "" {
				t.Fatalf("PDU %s: %v (present %v)", e, r, ok)
			}
		}
		// The 50 messages, in order.
		msgs, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionForward, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []id.EventID
		for _, e := range msgs.Chunk {
			if e.Type == event.EventMessage {
				got = append(got, e.ID)
			}
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("timeline holds %d messages, want the 50 in order", len(got))
		}

		// Alice's device gets each to-device message once; bob's receipt
		// on the last message, his typing and his device change reach her.
		seen := map[int]int{}
		receipt, changed := false, false
		aliceSync.until("the EDUs", func(r *mautrix.RespSync) bool {
			for _, e := range r.ToDevice.Events {
				var c struct {
					N int `json:"n"`
				}
				if e.Type.Type == "org.example.ping" && e.Sender == bob.UserID && json.Unmarshal(e.Content.VeryRaw, &c) == nil {
					seen[c.N]++
				}
			}
			if jr, ok := r.Rooms.Join[room]; ok {
				for _, e := range jr.Ephemeral.Events {
					if e.Type == event.EphemeralEventReceipt {
						_ = e.Content.ParseRaw(e.Type)
						if _, ok := (*e.Content.AsReceipt())[ids[49]][event.ReceiptTypeRead][bob.UserID]; ok {
							receipt = true
						}
					}
				}
			}
			if slices.Contains(r.DeviceLists.Changed, bob.UserID) {
				changed = true
			}
			return len(seen) == 40 && receipt && changed
		})
		for n, c := range seen {
			if c != 1 {
				t.Errorf("to-device message %d delivered %d times", n, c)
			}
		}
		// The last typing EDU said bob types.
		full, err := alice.SyncRequest(ctx(), 0, "", "", true, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		typing := false
		if jr, ok := full.Rooms.Join[room]; ok {
			for _, e := range jr.Ephemeral.Events {
				if e.Type == event.EphemeralEventTyping {
					_ = e.Content.ParseRaw(e.Type)
					typing = typing || slices.Contains(e.Content.AsTyping().UserIDs, bob.UserID)
				}
			}
		}
		if !typing {
			t.Error("bob's typing (the last typing EDU) is not in alice's sync")
		}
	})
}
