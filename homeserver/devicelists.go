package homeserver

import (
	"context"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/keys"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// federatedKeysNotifier is the E2EE relay's keys.Notifier when other
// servers must hear of local users' device changes: it tells next, then
// hands the change to the federation component, which sends it to the
// servers that share a room with the user.
type federatedKeysNotifier struct {
	next   keys.Notifier
	store  *storage.Store
	sender api.DeviceListSender
	// suffix is ":" and the server name: local users' ids end with it.
	suffix string
	log    *logrus.Entry
}

// deviceListSendTimeout bounds the hand-over of one change.
const deviceListSendTimeout = 10 * time.Second

// NotifyToDevice implements keys.Notifier.
func (n federatedKeysNotifier) NotifyToDevice(userID string) { n.next.NotifyToDevice(userID) }

// NotifyKeyCounts implements keys.Notifier.
func (n federatedKeysNotifier) NotifyKeyCounts(userID, deviceID string) {
	n.next.NotifyKeyCounts(userID, deviceID)
}

// NotifyDeviceListChange implements keys.Notifier. The change is handed
// over before the request that made it returns (queued durably on the
// bus), so that a crash right after cannot lose it.
func (n federatedKeysNotifier) NotifyDeviceListChange(userID string) {
	n.next.NotifyDeviceListChange(userID)
	if !strings.HasSuffix(userID, n.suffix) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deviceListSendTimeout)
	defer cancel()
	u, err := n.update(ctx, userID)
	if err != nil {
		n.log.WithError(err).Warn("read a device-list change for other servers")
		return
	}
	if err := n.sender.SendDeviceListUpdate(ctx, u); err != nil {
		n.log.WithError(err).Warn("queue a device-list change for other servers")
	}
}

// update describes userID's last device-list change as other servers
// are told of it: with the change before it, and the device's keys (with
// the signatures uploaded since) and display name as they are now
// (servers keeping a copy of the list store them from the update).
func (n federatedKeysNotifier) update(ctx context.Context, userID string) (api.DeviceListUpdate, error) {
	c, prev, err := n.store.LatestDeviceChange(ctx, userID)
	if err != nil {
		return api.DeviceListUpdate{}, err
	}
	u := api.DeviceListUpdate{UserID: userID, DeviceID: c.DeviceID, StreamID: c.StreamID, PrevStreamID: prev, Deleted: c.Deleted}
	if c.Deleted || c.DeviceID == "" {
		return u, nil
	}
	// A change of the cross-signing keys is named after one of them
	// (storage.SetCrossSigningKeys): other servers get the keys.
	cs, err := keys.SignedCrossSigningKeys(ctx, n.store, userID)
	if err != nil {
		return api.DeviceListUpdate{}, err
	}
	if cs.Names(c.DeviceID) {
		u.MasterKey, u.SelfSigningKey = cs.Master, cs.SelfSigning
		return u, nil
	}
	// With the signatures uploaded since (a device verified by the
	// user's self-signing key): a server keeping a copy of the list
	// keeps the keys as sent.
	signed, name, err := keys.SignedDeviceKeys(ctx, n.store, userID, c.DeviceID)
	if err != nil {
		return api.DeviceListUpdate{}, err
	}
	u.Keys = signed
	if name != nil {
		u.DisplayName = *name
	}
	return u, nil
}

var _ keys.Notifier = federatedKeysNotifier{}
