package push

import (
	"encoding/json"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Limits of the spec on pusher fields.
const (
	maxAppIDBytes   = 64
	maxPushKeyBytes = 512
	maxPusherBody   = 65536
)

// pusherJSON is a pusher as GET /pushers returns it.
type pusherJSON struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// GetPushers serves GET /pushers.
func (h *Handlers) GetPushers(r *http.Request) (any, error) {
	ps, err := h.store.Pushers(r.Context(), auth.DeviceFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	out := make([]pusherJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, pusherJSON{PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: p.Data})
	}
	return map[string]any{"pushers": out}, nil
}

// setPusherBody is the body of POST /pushers/set.
type setPusherBody struct {
	PushKey           *string         `json:"pushkey"`
	Kind              json.RawMessage `json:"kind"`
	AppID             *string         `json:"app_id"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// SetPusher serves POST /pushers/set: kind "http" creates or updates a
// pusher (data.url an https URL ending in /_matrix/push/v1/notify, on a
// host the configuration allows), kind null deletes one.
func (h *Handlers) SetPusher(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	var body setPusherBody
	if err := httputil.DecodeJSON(r, maxPusherBody, &body); err != nil {
		return nil, err
	}
	if body.PushKey == nil || body.AppID == nil {
		return nil, httputil.MissingParam("pushkey and app_id are required")
	}
	if len(*body.AppID) > maxAppIDBytes || len(*body.PushKey) > maxPushKeyBytes || *body.AppID == "" || *body.PushKey == "" {
		return nil, httputil.InvalidParam("app_id must be 1 to %d bytes and pushkey 1 to %d bytes", maxAppIDBytes, maxPushKeyBytes)
	}
	if len(body.Kind) == 0 {
		return nil, httputil.MissingParam("kind is required (null to delete the pusher)")
	}
	if string(body.Kind) == "null" {
		if err := h.store.DeletePusher(r.Context(), dev.UserID, *body.AppID, *body.PushKey); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	var kind string
	if err := json.Unmarshal(body.Kind, &kind); err != nil {
		return nil, httputil.BadJSON("kind must be a string or null")
	}
	if kind != "http" {
		return nil, httputil.InvalidParam("unsupported pusher kind %q: this server supports http pushers", kind)
	}
	if body.AppDisplayName == nil || body.DeviceDisplayName == nil || body.Lang == nil || len(body.Data) == 0 {
		return nil, httputil.MissingParam("app_display_name, device_display_name, lang and data are required")
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(body.Data, &data); err != nil || data == nil {
		return nil, httputil.BadJSON("data must be an object")
	}
	var pd pusherData
	if err := json.Unmarshal(body.Data, &pd); err != nil {
		return nil, httputil.BadJSON("data.url and data.format must be strings")
	}
	if pd.URL == "" {
		return nil, httputil.MissingParam("data.url is required for http pushers")
	}
	if err := checkGatewayURL(h.cfg, pd.URL); err != nil {
		return nil, httputil.InvalidParam("%v", err)
	}
	p := storage.Pusher{UserID: dev.UserID, AppID: *body.AppID, PushKey: *body.PushKey, Kind: kind,
		AppDisplayName: *body.AppDisplayName, DeviceDisplayName: *body.DeviceDisplayName, ProfileTag: body.ProfileTag,
		Lang: *body.Lang, Data: body.Data, DeviceID: dev.DeviceID}
	if err := h.store.SetPusher(r.Context(), p, body.Append); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
