package streams

import (
	"context"
	"time"
)

// Positions reads the latest positions of the streams the E2EE relay
// appends to.
type Positions interface {
	ToDevicePos(ctx context.Context) (int64, error)
	DeviceListPos(ctx context.Context) (int64, error)
	// JoinedRoomsOf lists the rooms a user of any server is joined to,
	// for waking the local users who share one with a remote user.
	JoinedRoomsOf(ctx context.Context, userID string) ([]string, error)
}

// KeysNotifier is the E2EE relay's view of the notifier: it says who
// changed, the notifier needs the stream's position too.
type KeysNotifier struct {
	Notifier  *Notifier
	Positions Positions
}

// positionTimeout bounds the position lookup of a notification.
const positionTimeout = 5 * time.Second

// NotifyToDevice wakes userID's syncs for new to-device messages.
func (k KeysNotifier) NotifyToDevice(userID string) {
	ctx, cancel := context.WithTimeout(context.Background(), positionTimeout)
	defer cancel()
	pos, err := k.Positions.ToDevicePos(ctx)
	if err != nil {
		// The syncs still wake: the to-device read does not depend on it.
		pos = 0
	}
	k.Notifier.OnToDevice(userID, pos)
}

// NotifyKeyCounts records that a device's key counts changed: /sync
// reads them again for it.
func (k KeysNotifier) NotifyKeyCounts(userID, deviceID string) {
	k.Notifier.OnKeyCounts(userID, deviceID)
}

// NotifyDeviceListChange wakes the syncs of userID and everyone sharing a
// room with them (userID may be another server's).
func (k KeysNotifier) NotifyDeviceListChange(userID string) {
	ctx, cancel := context.WithTimeout(context.Background(), positionTimeout)
	defer cancel()
	pos, err := k.Positions.DeviceListPos(ctx)
	if err != nil {
		pos = 0
	}
	if k.Notifier.IsLocal(userID) {
		k.Notifier.OnDeviceListChange(userID, pos)
		return
	}
	rooms, err := k.Positions.JoinedRoomsOf(ctx, userID)
	if err != nil {
		rooms = nil // the position still moves: the next sync sees it
	}
	k.Notifier.OnRemoteDeviceListChange(rooms, pos)
}
