package account

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

type deviceJSON struct {
	DeviceID    string  `json:"device_id"`
	DisplayName *string `json:"display_name,omitempty"`
	LastSeenIP  string  `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64   `json:"last_seen_ts,omitempty"`
}

func toJSON(d storage.Device) deviceJSON {
	return deviceJSON{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

// Devices is GET /devices.
func (h *Handlers) Devices(r *http.Request) (any, error) {
	devs, err := h.store.Devices(r.Context(), auth.DeviceFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	out := make([]deviceJSON, len(devs))
	for i, d := range devs {
		out[i] = toJSON(d)
	}
	return map[string]any{"devices": out}, nil
}

// Device is GET /devices/{deviceId}.
func (h *Handlers) Device(r *http.Request) (any, error) {
	d, err := h.store.Device(r.Context(), auth.DeviceFrom(r.Context()).UserID, chi.URLParam(r, "deviceID"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("unknown device")
	}
	if err != nil {
		return nil, err
	}
	return toJSON(d), nil
}

// UpdateDevice is PUT /devices/{deviceId}: renames a device.
func (h *Handlers) UpdateDevice(r *http.Request) (any, error) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.DisplayName != nil && len(*req.DisplayName) > 100 {
		return nil, httputil.InvalidParam("display_name is longer than 100 characters")
	}
	if as := h.msc4190AppService(r); as != nil {
		// MSC4190: an application service creates its users' devices.
		dev := auth.DeviceFrom(r.Context())
		if err := h.store.CreateDevice(r.Context(), dev.UserID, chi.URLParam(r, "deviceID"), req.DisplayName); err != nil {
			return nil, err
		}
		h.devicesChanged(dev.UserID)
		return struct{}{}, nil
	}
	if req.DisplayName == nil {
		return struct{}{}, nil
	}
	err := h.store.SetDeviceName(r.Context(), auth.DeviceFrom(r.Context()).UserID, chi.URLParam(r, "deviceID"), *req.DisplayName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("unknown device")
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// DeleteDevice is DELETE /devices/{deviceId}, behind UIA.
func (h *Handlers) DeleteDevice(r *http.Request) (any, error) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	return h.deleteDevices(r, req.Auth, []string{chi.URLParam(r, "deviceID")})
}

// DeleteDevices is POST /delete_devices, behind UIA.
func (h *Handlers) DeleteDevices(r *http.Request) (any, error) {
	var req struct {
		Devices []string        `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Devices == nil {
		return nil, httputil.MissingParam("devices is required")
	}
	return h.deleteDevices(r, req.Auth, req.Devices)
}

func (h *Handlers) deleteDevices(r *http.Request, authDict json.RawMessage, ids []string) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	// MSC4190: an application service deletes its users' devices without
	// UIA (its users have no password).
	if h.msc4190AppService(r) == nil {
		if _, err := h.uia.Verify(r.Context(), uia.Request{Auth: authDict, Flows: passwordFlows, UserID: userID, Operation: uia.Operation(r)}); err != nil {
			return nil, err
		}
	}
	if err := h.store.DeleteDevices(r.Context(), userID, ids); err != nil {
		return nil, err
	}
	h.devicesChanged(userID)
	return struct{}{}, nil
}

// passwordFlows is the UIA flow of operations on one's own account.
var passwordFlows = [][]string{{uia.StagePassword}}
