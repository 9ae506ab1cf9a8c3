package syncv3

import (
	"encoding/json"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
)

// response is the body of /sync. Every section is present, empty when
// nothing happened, as Synapse sends it.
type response struct {
	NextBatch   string      `json:"next_batch"`
	Rooms       roomsPart   `json:"rooms"`
	Presence    rawEvents   `json:"presence"`
	AccountData rawEvents   `json:"account_data"`
	ToDevice    rawEvents   `json:"to_device"`
	DeviceLists deviceLists `json:"device_lists"`
	// OneTimeKeysCount and FallbackKeyTypes are the device's E2EE key
	// stock; always present so that clients know to top them up.
	OneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	FallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
	// UnstableFallbackKeyTypes is the same under MSC2732's name, which
	// older clients read.
	UnstableFallbackKeyTypes []string `json:"org.matrix.msc2732.device_unused_fallback_key_types"`
}

// empty reports whether nothing happened: a long poll goes on waiting.
func (r *response) empty() bool {
	return len(r.Rooms.Join) == 0 && len(r.Rooms.Invite) == 0 && len(r.Rooms.Leave) == 0 && len(r.Rooms.Knock) == 0 &&
		len(r.Presence.Events) == 0 && len(r.AccountData.Events) == 0 && len(r.ToDevice.Events) == 0 &&
		len(r.DeviceLists.Changed) == 0 && len(r.DeviceLists.Left) == 0
}

type roomsPart struct {
	Join   map[string]*joinedRoom  `json:"join"`
	Invite map[string]*invitedRoom `json:"invite"`
	Leave  map[string]*leftRoom    `json:"leave"`
	Knock  map[string]*knockedRoom `json:"knock"`
}

// rawEvents is an {"events": […]} of events that are not room events
// (account data, presence, ephemeral, to-device).
type rawEvents struct {
	Events []json.RawMessage `json:"events"`
}

// clientEvents is an {"events": […]} of room events.
type clientEvents struct {
	Events []events.Client `json:"events"`
}

type timeline struct {
	Events    []events.Client `json:"events"`
	Limited   bool            `json:"limited"`
	PrevBatch string          `json:"prev_batch,omitempty"`
}

type joinedRoom struct {
	Summary *summary `json:"summary,omitempty"`
	// State is the state before the timeline; StateAfter (with
	// use_state_after) the state at its end; one of them is set.
	State                     *clientEvents     `json:"state,omitempty"`
	StateAfter                *clientEvents     `json:"state_after,omitempty"`
	UnstableStateAfter        *clientEvents     `json:"org.matrix.msc4222.state_after,omitempty"`
	Timeline                  timeline          `json:"timeline"`
	Ephemeral                 rawEvents         `json:"ephemeral"`
	AccountData               rawEvents         `json:"account_data"`
	UnreadNotifications       Counts            `json:"unread_notifications"`
	UnreadThreadNotifications map[string]Counts `json:"unread_thread_notifications,omitempty"`
}

type summary struct {
	Heroes       []string `json:"m.heroes,omitempty"`
	JoinedCount  *int     `json:"m.joined_member_count,omitempty"`
	InvitedCount *int     `json:"m.invited_member_count,omitempty"`
}

type invitedRoom struct {
	InviteState rawEvents `json:"invite_state"`
}

type knockedRoom struct {
	KnockState rawEvents `json:"knock_state"`
}

type leftRoom struct {
	State              *clientEvents `json:"state,omitempty"`
	StateAfter         *clientEvents `json:"state_after,omitempty"`
	UnstableStateAfter *clientEvents `json:"org.matrix.msc4222.state_after,omitempty"`
	Timeline           timeline      `json:"timeline"`
	AccountData        rawEvents     `json:"account_data"`
}

type deviceLists struct {
	Changed []string `json:"changed,omitempty"`
	Left    []string `json:"left,omitempty"`
}
