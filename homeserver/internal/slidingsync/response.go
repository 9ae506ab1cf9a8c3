package slidingsync

import (
	"encoding/json"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
)

// response is the body of a sliding sync response (ruma's
// sync_events::v5::Response, as Synapse fills it).
type response struct {
	TxnID      string               `json:"txn_id,omitempty"`
	Pos        string               `json:"pos"`
	Lists      map[string]listResp  `json:"lists"`
	Rooms      map[string]*roomResp `json:"rooms"`
	Extensions extensionsResp       `json:"extensions"`
}

// listResp is a list's part: how many rooms it holds. Synapse no longer
// sends ops; clients sort by bump_stamp themselves.
type listResp struct {
	Count int `json:"count"`
}

// roomResp is one room's part. Fields are absent when unchanged.
type roomResp struct {
	Name              string            `json:"name,omitempty"`
	Avatar            string            `json:"avatar,omitempty"`
	Heroes            []hero            `json:"heroes,omitempty"`
	Initial           bool              `json:"initial,omitempty"`
	IsDM              bool              `json:"is_dm,omitempty"`
	InviteState       []json.RawMessage `json:"invite_state,omitempty"`
	RequiredState     []events.Client   `json:"required_state,omitempty"`
	Timeline          []events.Client   `json:"timeline,omitempty"`
	PrevBatch         string            `json:"prev_batch,omitempty"`
	Limited           bool              `json:"limited,omitempty"`
	NumLive           *int              `json:"num_live,omitempty"`
	JoinedCount       *int              `json:"joined_count,omitempty"`
	InvitedCount      *int              `json:"invited_count,omitempty"`
	NotificationCount *int              `json:"notification_count,omitempty"`
	HighlightCount    *int              `json:"highlight_count,omitempty"`
	BumpStamp         *int64            `json:"bump_stamp,omitempty"`
}

// hero is a member the client may name an unnamed room after.
type hero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type extensionsResp struct {
	ToDevice    *toDeviceResp    `json:"to_device,omitempty"`
	E2EE        *e2eeResp        `json:"e2ee,omitempty"`
	AccountData *accountDataResp `json:"account_data,omitempty"`
	Receipts    *roomEvents      `json:"receipts,omitempty"`
	Typing      *roomEvents      `json:"typing,omitempty"`
}

type toDeviceResp struct {
	NextBatch string            `json:"next_batch"`
	Events    []json.RawMessage `json:"events"`
}

type deviceLists struct {
	Changed []string `json:"changed,omitempty"`
	Left    []string `json:"left,omitempty"`
}

type e2eeResp struct {
	DeviceLists      deviceLists    `json:"device_lists"`
	OneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	FallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
}

type accountDataResp struct {
	Global []json.RawMessage            `json:"global,omitempty"`
	Rooms  map[string][]json.RawMessage `json:"rooms,omitempty"`
}

// roomEvents is an extension's one event per room (receipts, typing).
type roomEvents struct {
	Rooms map[string]json.RawMessage `json:"rooms"`
}

// empty reports whether the response tells nothing new (a long poll
// goes on waiting). Key counts do not count: they are in every response.
func (r *response) empty(countsChanged bool) bool {
	x := r.Extensions
	return len(r.Rooms) == 0 && !countsChanged &&
		(x.ToDevice == nil || len(x.ToDevice.Events) == 0) &&
		(x.E2EE == nil || (len(x.E2EE.DeviceLists.Changed) == 0 && len(x.E2EE.DeviceLists.Left) == 0)) &&
		(x.AccountData == nil || (len(x.AccountData.Global) == 0 && len(x.AccountData.Rooms) == 0)) &&
		(x.Receipts == nil || len(x.Receipts.Rooms) == 0) &&
		(x.Typing == nil || len(x.Typing.Rooms) == 0)
}
