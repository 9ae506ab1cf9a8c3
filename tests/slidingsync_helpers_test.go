package tests

import (
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// slidingSyncPath is simplified sliding sync's endpoint (MSC4186).
const slidingSyncPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// elementXRequiredState is the required_state matrix-rust-sdk's room list
// service (Element X) asks for (DEFAULT_REQUIRED_STATE in
// matrix-sdk-ui/src/room_list_service/mod.rs).
var elementXRequiredState = [][]string{
	{"m.room.name", ""}, {"m.room.encryption", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"},
	{"m.room.topic", ""}, {"m.room.avatar", ""}, {"m.room.canonical_alias", ""}, {"m.room.power_levels", ""},
	{"org.matrix.msc3401.call.member", "*"}, {"m.room.join_rules", ""}, {"m.room.tombstone", ""},
	{"m.room.create", ""}, {"m.room.history_visibility", ""}, {"io.element.functional_members", ""},
	{"m.space.parent", "*"}, {"m.space.child", "*"}, {"org.matrix.msc3672.beacon_info", "*"},
}

// roomListRequest is the body matrix-rust-sdk's room list service sends
// (connection "room-list", list "all_rooms", timeline_limit 1, the
// account data, receipts and typing extensions).
func roomListRequest(txn string, ranges ...[2]int) map[string]any {
	rs := make([][]int, len(ranges))
	for i, r := range ranges {
		rs[i] = []int{r[0], r[1]}
	}
	return map[string]any{
		"conn_id": "room-list",
		"txn_id":  txn,
		"lists": map[string]any{
			"all_rooms": map[string]any{
				"ranges":         rs,
				"required_state": elementXRequiredState,
				"timeline_limit": 1,
				"filters":        map[string]any{},
			},
		},
		"extensions": map[string]any{
			"account_data": map[string]any{"enabled": true},
			"receipts":     map[string]any{"enabled": true, "rooms": []string{"*"}},
			"typing":       map[string]any{"enabled": true},
		},
	}
}

// encryptionRequest is the body of matrix-rust-sdk's encryption sync
// (connection "encryption": to-device and E2EE extensions, no lists).
func encryptionRequest(txn, since string) map[string]any {
	td := map[string]any{"enabled": true}
	if since != "" {
		td["since"] = since
	}
	return map[string]any{
		"conn_id":    "encryption",
		"txn_id":     txn,
		"extensions": map[string]any{"to_device": td, "e2ee": map[string]any{"enabled": true}},
	}
}

// ssResponse is a sliding sync response, decoded.
type ssResponse struct {
	Pos   string `json:"pos"`
	TxnID string `json:"txn_id"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[string]ssRoom `json:"rooms"`
	Extensions struct {
		ToDevice *struct {
			NextBatch string           `json:"next_batch"`
			Events    []map[string]any `json:"events"`
		} `json:"to_device"`
		E2EE *struct {
			DeviceLists struct {
				Changed []string `json:"changed"`
				Left    []string `json:"left"`
			} `json:"device_lists"`
			OneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
			FallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
		} `json:"e2ee"`
		AccountData *struct {
			Global []map[string]any            `json:"global"`
			Rooms  map[string][]map[string]any `json:"rooms"`
		} `json:"account_data"`
		Receipts *struct {
			Rooms map[string]map[string]any `json:"rooms"`
		} `json:"receipts"`
		Typing *struct {
			Rooms map[string]map[string]any `json:"rooms"`
		} `json:"typing"`
	} `json:"extensions"`
}

// ssRoom is one room of a response.
type ssRoom struct {
	Name          string           `json:"name"`
	Initial       bool             `json:"initial"`
	IsDM          bool             `json:"is_dm"`
	InviteState   []map[string]any `json:"invite_state"`
	RequiredState []map[string]any `json:"required_state"`
	Timeline      []map[string]any `json:"timeline"`
	PrevBatch     string           `json:"prev_batch"`
	Limited       bool             `json:"limited"`
	NumLive       *int             `json:"num_live"`
	JoinedCount   *int             `json:"joined_count"`
	InvitedCount  *int             `json:"invited_count"`
	Notifications *int             `json:"notification_count"`
	Highlights    *int             `json:"highlight_count"`
	BumpStamp     *int64           `json:"bump_stamp"`
	Heroes        []struct {
		UserID      string `json:"user_id"`
		DisplayName string `json:"displayname"`
	} `json:"heroes"`
}

// ssPath is the endpoint with pos and timeout.
func ssPath(pos string, timeoutMS int) string {
	q := url.Values{}
	if pos != "" {
		q.Set("pos", pos)
	}
	if timeoutMS >= 0 {
		q.Set("timeout", strconv.Itoa(timeoutMS))
	}
	return slidingSyncPath + "?" + q.Encode()
}

// slidingSync sends one request and decodes the answer, failing the test
// on anything but a 200.
func slidingSync(t testing.TB, s *Server, token, pos string, timeoutMS int, body any) ssResponse {
	t.Helper()
	r := s.Do("POST", ssPath(pos, timeoutMS), token, body).Expect(t, 200, "")
	var out ssResponse
	if err := json.Unmarshal(r.Raw, &out); err != nil {
		t.Fatalf("decode sliding sync response: %v; %s", err, r.Raw)
	}
	if out.Pos == "" {
		t.Fatalf("no pos in %s", r.Raw)
	}
	return out
}

// roomsByBump returns the response's rooms, highest bump_stamp first.
func roomsByBump(t testing.TB, resp ssResponse) []string {
	t.Helper()
	var out []string
	for id, r := range resp.Rooms {
		if r.BumpStamp == nil {
			t.Fatalf("room %s has no bump_stamp", id)
		}
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return *resp.Rooms[out[i]].BumpStamp > *resp.Rooms[out[j]].BumpStamp })
	return out
}

// createRooms creates n rooms of c, four at a time, and returns them in
// creation order.
func createRooms(t testing.TB, s *Server, c *mautrix.Client, n int) []id.RoomID {
	t.Helper()
	out := make([]id.RoomID, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr string
	next := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				r, err := s.tryDo("POST", "/_matrix/client/v3/createRoom", c.AccessToken, map[string]any{"name": "room " + strconv.Itoa(i)})
				room, _ := r.Body["room_id"].(string)
				if err != nil || room == "" {
					mu.Lock()
					firstErr = string(r.Raw)
					if err != nil {
						firstErr = err.Error()
					}
					mu.Unlock()
					return
				}
				out[i] = id.RoomID(room)
			}
		}()
	}
	wg.Wait()
	if firstErr != "" {
		t.Fatalf("create rooms: %s", firstErr)
	}
	return out
}

// eventTypes returns the (type, state_key) pairs of state events.
func stateKeys(evs []map[string]any) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, e := range evs {
		typ, _ := e["type"].(string)
		key, _ := e["state_key"].(string)
		out[[2]string{typ, key}] = true
	}
	return out
}

// timelineTexts returns the bodies of a room's timeline messages.
func timelineTexts(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] != "m.room.message" {
			continue
		}
		c, _ := e["content"].(map[string]any)
		b, _ := c["body"].(string)
		out = append(out, b)
	}
	return out
}
