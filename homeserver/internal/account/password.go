package account

import (
	"encoding/json"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// ChangePassword is POST /account/password, behind UIA. Other devices are
// logged out unless logout_devices is false.
func (h *Handlers) ChangePassword(r *http.Request) (any, error) {
	var req struct {
		NewPassword   string          `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
		Auth          json.RawMessage `json:"auth"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	d := auth.DeviceFrom(r.Context())
	if req.NewPassword != "" {
		if err := h.checkPasswordPolicy(req.NewPassword); err != nil {
			return nil, err
		}
	}
	if _, err := h.uia.Verify(r.Context(), uia.Request{Auth: req.Auth, Flows: passwordFlows, UserID: d.UserID, Operation: uia.Operation(r)}); err != nil {
		return nil, err
	}
	if req.NewPassword == "" {
		return nil, httputil.MissingParam("new_password is required")
	}
	hash, err := h.hashPassword(r.Context(), req.NewPassword)
	if err != nil {
		return nil, err
	}
	var keep *string
	if req.LogoutDevices == nil || *req.LogoutDevices {
		keep = &d.DeviceID
	}
	if err := h.store.SetPassword(r.Context(), d.UserID, hash, keep); err != nil {
		return nil, err
	}
	if keep != nil {
		h.devicesChanged(d.UserID)
	}
	return struct{}{}, nil
}

// Deactivate is POST /account/deactivate, behind UIA.
func (h *Handlers) Deactivate(r *http.Request) (any, error) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	d := auth.DeviceFrom(r.Context())
	if _, err := h.uia.Verify(r.Context(), uia.Request{Auth: req.Auth, Flows: passwordFlows, UserID: d.UserID, Operation: uia.Operation(r)}); err != nil {
		return nil, err
	}
	if err := h.store.Deactivate(r.Context(), d.UserID); err != nil {
		return nil, err
	}
	h.devicesChanged(d.UserID)
	// No identity server is ever contacted, so there is nothing to unbind.
	return map[string]string{"id_server_unbind_result": "no-support"}, nil
}

// ThreePIDs is GET /account/3pid: this server keeps no third-party ids.
func (h *Handlers) ThreePIDs(r *http.Request) (any, error) {
	return map[string]any{"threepids": []any{}}, nil
}
