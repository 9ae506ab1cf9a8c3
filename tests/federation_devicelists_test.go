package tests

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// TestFederationDeviceListCopy: B keeps a copy of the device list of
// alice (on A), who shares a room with bob, from A's /user/devices, and
// answers bob's /keys/query from it while A is out of reach. A device-list
// EDU that follows the copy (its prev_id is the copy's stream id) is
// applied in place; one after a gap marks the copy stale: B then asks A
// live (and fails while A is out of reach) and, once A answers again,
// fetches the whole list, which replaces the copy. A's EDUs keep the
// copy current: a new device (m.device_list_update), new cross-signing
// keys (m.signing_key_update).
func TestFederationDeviceListCopy(t *testing.T) {
	t.Parallel()
	storagetest.EnginesEach(t, func(t *testing.T, dbURL func(testing.TB) string) {
		links, cutLinks := cuttableLinks(t)
		f := startFederation(t, dbURL, []string{fedA, fedB}, cutLinks)
		a, b, alice, bob, _ := publicRoomOnA(t, f)
		device := newOlmDevice(t, alice)
		device.upload(a, 1)
		aliceID, deviceID := alice.UserID.String(), alice.DeviceID.String()

		// queryAlice is bob's /keys/query for alice: her device ids, and
		// whether B reported A as failing.
		queryAlice := func() (devices []string, failed bool) {
			t.Helper()
			r := b.Do("POST", "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
			if r.Status != 200 {
				t.Fatalf("keys/query: %d %s", r.Status, r.Raw)
			}
			failures, _ := r.Body["failures"].(map[string]any)
			keys, _ := r.Body["device_keys"].(map[string]any)
			mine, _ := keys[aliceID].(map[string]any)
			for d := range mine {
				devices = append(devices, d)
			}
			return devices, failures[fedA] != nil
		}
		cut := func() { links[fedB+">"+fedA].cut() }
		restore := func() { links[fedB+">"+fedA].restore() }
		// B copies the list once it knows alice shares a room with bob
		// (its rooms stream has bob's join and the room's members).
		waitUntil(t, "B answers from its copy of alice's list, A out of reach", func() bool {
			queryAlice()
			cut()
			defer restore()
			d, failed := queryAlice()
			return !failed && len(d) == 1 && d[0] == deviceID
		})
		cut()

		// An EDU that follows the copy: applied in place.
		_, body := f.asServer(t, fedA, fedB, "GET", "/_matrix/federation/v1/user/devices/"+url.PathEscape(aliceID), nil)
		streamID := int64(body["stream_id"].(float64))
		edu := func(device string, stream int64, prev []int64) {
			t.Helper()
			status, body := f.asServer(t, fedB, fedA, "PUT", fmt.Sprintf("/_matrix/federation/v1/send/dl%d", time.Now().UnixNano()), map[string]any{
				"origin": fedA, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
				"edus": []any{map[string]any{"edu_type": "m.device_list_update", "content": map[string]any{
					"user_id": aliceID, "device_id": device, "stream_id": stream, "prev_id": prev,
					"keys": map[string]any{"user_id": aliceID, "device_id": device, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
						"keys": map[string]string{"ed25519:" + device: "x", "curve25519:" + device: "y"}},
				}}},
			})
			if status != 200 {
				t.Fatalf("send the EDU: %d %v", status, body)
			}
		}
		edu("EXTRA", streamID+1000, []int64{streamID})
		if d, failed := queryAlice(); failed || len(d) != 2 {
			t.Fatalf("after an EDU that follows the copy, with A out of reach: %v (A failed: %v)", d, failed)
		}
		// A gap: the copy is stale, and A is asked live.
		edu("GAP", streamID+3000, []int64{streamID + 2000})
		if _, failed := queryAlice(); !failed {
			t.Fatal("after a gap, with A out of reach: answered from the stale copy")
		}
		// A answers again: the whole list replaces the copy (A never had
		// EXTRA nor GAP).
		restore()
		if d, failed := queryAlice(); failed || len(d) != 1 || d[0] != deviceID {
			t.Fatalf("after the resync: %v (A failed: %v)", d, failed)
		}
		cut()
		if d, failed := queryAlice(); failed || len(d) != 1 {
			t.Fatalf("the resynced copy, with A out of reach: %v (A failed: %v)", d, failed)
		}
		restore()

		// A device alice adds reaches B by A's EDU, which follows the
		// copy: B has it without asking.
		second := a.Login(alice.UserID)
		newOlmDevice(t, second).upload(a, 1)
		waitUntil(t, "bob's server hears of alice's new device", func() bool {
			d, _ := queryAlice()
			return len(d) == 2
		})
		cut()
		if d, failed := queryAlice(); failed || len(d) != 2 {
			t.Fatalf("alice's new device, with A out of reach: %v (A failed: %v)", d, failed)
		}

		// Alice's new cross-signing keys reach B as an m.signing_key_update
		// (as Synapse sends them), which B applies to its copy: B has
		// them without asking A.
		cs := newCrossSigning(t)
		a.Do("POST", signingUploadPath, alice.AccessToken, cs.body(t, aliceID)).Expect(t, 200, "")
		waitUntil(t, "bob's server hears of alice's cross-signing keys, A out of reach", func() bool {
			r := b.Do("POST", "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
			failures, _ := r.Body["failures"].(map[string]any)
			if r.Status != 200 || failures[fedA] != nil {
				t.Fatalf("keys/query with A out of reach: %d %s", r.Status, r.Raw)
			}
			master, _ := r.Body["master_keys"].(map[string]any)[aliceID].(map[string]any)
			self, _ := r.Body["self_signing_keys"].(map[string]any)[aliceID].(map[string]any)
			return master != nil && self != nil &&
				master["keys"].(map[string]any)[cs.master.keyID()] == cs.master.pub &&
				self["keys"].(map[string]any)[cs.self.keyID()] == cs.self.pub
		})
		restore()
	})
}
