package keys

import (
	"encoding/json"
	"testing"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

func TestDeviceListVerdict(t *testing.T) {
	keys := json.RawMessage(`{"device_id":"D"}`)
	copyAt := func(stream int64, stale bool) storage.RemoteDeviceList {
		return storage.RemoteDeviceList{UserID: "@u:other", StreamID: stream, Stale: stale}
	}
	for _, tc := range []struct {
		name string
		l    storage.RemoteDeviceList
		u    hsapi.RemoteDeviceListUpdate
		want changeVerdict
	}{
		{"follows the copy", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 6, PrevIDs: []int64{5}, Keys: keys}, changeApply},
		{"deletion that follows", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 9, PrevIDs: []int64{5}, Deleted: true}, changeApply},
		{"already seen", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 5, PrevIDs: []int64{4}, Keys: keys}, changeSeen},
		{"older", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 3, PrevIDs: []int64{2}, Keys: keys}, changeSeen},
		{"a gap", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 8, PrevIDs: []int64{7}, Keys: keys}, changeResync},
		{"one prev missed among two", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 8, PrevIDs: []int64{5, 7}, Keys: keys}, changeResync},
		{"no prev_id", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 8, Keys: keys}, changeResync},
		{"a change without keys (a new login, cross-signing keys)", copyAt(5, false), hsapi.RemoteDeviceListUpdate{StreamID: 6, PrevIDs: []int64{5}}, changeResync},
		{"stale copy", copyAt(5, true), hsapi.RemoteDeviceListUpdate{StreamID: 6, PrevIDs: []int64{5}, Keys: keys}, changeResync},
	} {
		if got := verdict(tc.l, tc.u); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
}
