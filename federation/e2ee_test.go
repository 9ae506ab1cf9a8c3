package federation

import (
	"encoding/json"
	"testing"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
)

// TestDeviceListEDU checks the m.device_list_update content other servers
// get: prev_id names the change before (empty for a user's first), and
// the keys and display name come with a device that exists.
func TestDeviceListEDU(t *testing.T) {
	keys := json.RawMessage(`{"user_id":"@a:hs","device_id":"D","algorithms":[],"keys":{},"signatures":{}}`)
	for _, tc := range []struct {
		name string
		u    hsapi.DeviceListUpdate
		want string
	}{
		{"first change", hsapi.DeviceListUpdate{UserID: "@a:hs", DeviceID: "D", StreamID: 5, DisplayName: "Phone", Keys: keys},
			`{"user_id":"@a:hs","device_id":"D","device_display_name":"Phone","stream_id":5,"prev_id":[],"keys":` + string(keys) + `}`},
		{"later change", hsapi.DeviceListUpdate{UserID: "@a:hs", DeviceID: "D", StreamID: 9, PrevStreamID: 5, Keys: keys},
			`{"user_id":"@a:hs","device_id":"D","stream_id":9,"prev_id":[5],"keys":` + string(keys) + `}`},
		{"deleted", hsapi.DeviceListUpdate{UserID: "@a:hs", DeviceID: "D", StreamID: 12, PrevStreamID: 9, Deleted: true, Keys: keys},
			`{"user_id":"@a:hs","device_id":"D","stream_id":12,"prev_id":[9],"deleted":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deviceListEDU(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestKeyOfUser: a signing-key EDU's keys are kept only as the keys of the
// user they name.
func TestKeyOfUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		kept bool
	}{
		{"the user's", `{"user_id":"@a:hs","usage":["master"],"keys":{}}`, true},
		{"another user's", `{"user_id":"@b:hs","usage":["master"],"keys":{}}`, false},
		{"no user", `{"usage":["master"],"keys":{}}`, false},
		{"not an object", `"key"`, false},
		{"absent", ``, false},
	} {
		got := keyOfUser("@a:hs", json.RawMessage(tc.key))
		if (got != nil) != tc.kept {
			t.Errorf("%s: kept %v, want %v", tc.name, got != nil, tc.kept)
		}
	}
}
