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

// NotifyDeviceListChange implements keys.Notifier. The hand-over runs
// apart: it reads the change and queues messages, which the request that
// made the change need not wait for.
func (n federatedKeysNotifier) NotifyDeviceListChange(userID string) {
	n.next.NotifyDeviceListChange(userID)
	if !strings.HasSuffix(userID, n.suffix) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deviceListSendTimeout)
		defer cancel()
		c, err := n.store.LatestDeviceChange(ctx, userID)
		if err != nil {
			n.log.WithError(err).Warn("read a device-list change for other servers")
			return
		}
		if err := n.sender.SendDeviceListUpdate(ctx, api.DeviceListUpdate{UserID: userID, DeviceID: c.DeviceID, StreamID: c.StreamID, Deleted: c.Deleted}); err != nil {
			n.log.WithError(err).Warn("queue a device-list change for other servers")
		}
	}()
}

var _ keys.Notifier = federatedKeysNotifier{}
