// Package streams is what /sync (and later sliding sync) is built on: the
// positions of every stream a client follows, packed in one opaque token;
// the notifier that knows the current positions and wakes long-polling
// requests; the feeder that turns the roomserver's output into the rooms
// stream; and the in-memory typing stream.
//
// Every stream's position is a number that only grows and whose values
// commit in order (see migrations/0007), so that "everything after N" is
// a complete answer.
package streams

import (
	"fmt"
	"strconv"
	"strings"
)

// Token is a position in every stream at once: a /sync next_batch.
type Token struct {
	// Rooms is the rooms stream (sync_events.sync_pos): room events and
	// memberships.
	Rooms int64
	// Receipts, AccountData and Presence are sync_stream_positions'.
	Receipts    int64
	AccountData int64
	Presence    int64
	// ToDevice and DeviceLists are the stream ids of device_inbox and
	// device_list_changes.
	ToDevice    int64
	DeviceLists int64
	// Typing is the typing stream's position, kept in memory: a token
	// from before a restart is older than every position after it.
	Typing int64
}

// tokenPrefix starts sync tokens. It differs from /messages' "s" so that
// a sync token is never read as a pagination position by mistake.
const tokenPrefix = "m"

// String formats the token as clients see it.
func (t Token) String() string {
	return fmt.Sprintf("%s%d_%d_%d_%d_%d_%d_%d", tokenPrefix, t.Rooms, t.Receipts, t.AccountData, t.Presence, t.ToDevice, t.DeviceLists, t.Typing)
}

// ParseToken reads a token made by String.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimPrefix(s, tokenPrefix), "_")
	if !strings.HasPrefix(s, tokenPrefix) || len(parts) != 7 {
		return Token{}, fmt.Errorf("malformed sync token %q", s)
	}
	var n [7]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return Token{}, fmt.Errorf("malformed sync token %q", s)
		}
		n[i] = v
	}
	return Token{Rooms: n[0], Receipts: n[1], AccountData: n[2], Presence: n[3], ToDevice: n[4], DeviceLists: n[5], Typing: n[6]}, nil
}

// IsSyncToken reports whether s has the shape of a sync token, so that
// /messages can accept one (the spec allows a next_batch there).
func IsSyncToken(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

// After reports whether any position of t is past o's.
func (t Token) After(o Token) bool {
	return t.Rooms > o.Rooms || t.Receipts > o.Receipts || t.AccountData > o.AccountData || t.Presence > o.Presence ||
		t.ToDevice > o.ToDevice || t.DeviceLists > o.DeviceLists || t.Typing > o.Typing
}
