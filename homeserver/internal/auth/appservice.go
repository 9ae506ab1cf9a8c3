package auth

import (
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Query parameters of an application service's requests.
const (
	// paramUserID names the user the application service acts as.
	paramUserID = "user_id"
	// paramDeviceID and its MSC3202 unstable name (which mautrix-go
	// sends) name the device it acts as.
	paramDeviceID         = "device_id"
	paramDeviceIDUnstable = "org.matrix.msc3202.device_id"
)

// appServiceDevice is the device an application service's request acts
// as: its sender user, or the user_id parameter's user (which must be in
// its namespace and registered), on no device or on the device the
// device_id parameter names (which must exist: MSC3202).
func (a *Authenticator) appServiceDevice(r *http.Request, as *config.AppService) (api.Device, error) {
	q := r.URL.Query()
	userID := q.Get(paramUserID)
	if userID == "" {
		userID = as.SenderID()
	}
	if !as.OwnsUser(userID) {
		return api.Device{}, httputil.Forbidden("application service cannot masquerade as this user")
	}
	for _, other := range a.appServices {
		if other.ID != as.ID && other.ExclusiveUser(userID) {
			return api.Device{}, httputil.Forbidden("user is reserved by another application service")
		}
	}
	acct, err := a.store.Account(r.Context(), userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return api.Device{}, httputil.Forbidden("application service has not registered this user")
	case err != nil:
		return api.Device{}, err
	case acct.Deactivated:
		return api.Device{}, httputil.Errorf(httputil.CodeUserDeactivated, "user is deactivated")
	}
	dev := api.Device{UserID: userID, AppServiceID: as.ID}
	deviceID := q.Get(paramDeviceIDUnstable)
	if deviceID == "" {
		deviceID = q.Get(paramDeviceID)
	}
	if deviceID != "" {
		if _, err := a.store.Device(r.Context(), userID, deviceID); errors.Is(err, storage.ErrNotFound) {
			return api.Device{}, httputil.Forbidden("application service has no device %s for this user", deviceID)
		} else if err != nil {
			return api.Device{}, err
		}
		dev.DeviceID = deviceID
	}
	return dev, nil
}
