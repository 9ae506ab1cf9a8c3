package keys

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Other servers' users' device lists. A copy is kept for the remote users
// who share a room with this server's users (their servers then send
// their changes), made on the first /keys/query about them from their
// server's /user/devices, and kept up to date by their device-list EDUs:
// a change whose prev_id is the copy's stream id applies in place; any
// other (a gap: changes this server did not hear of) marks the copy
// stale, and the next query fetches the list again, as Synapse does. A
// user joining a room marks their copy stale too (storage: their server
// did not tell this one of changes while no room was shared). /keys/query
// answers from fresh copies, and asks the servers live for the others.

// resyncConcurrency bounds the /user/devices requests one /keys/query
// makes at once.
const resyncConcurrency = 8

// changeVerdict is what a device-list EDU does to the copy of a list.
type changeVerdict int

const (
	// changeSeen: the copy has the change already.
	changeSeen changeVerdict = iota
	// changeApply: the change follows the copy directly.
	changeApply
	// changeResync: changes were missed (or the EDU cannot be applied):
	// the list is fetched again.
	changeResync
)

// verdict applies Synapse's rule to a change of a user whose list is
// copied as l: a change no later than the copy was seen; one whose
// prev_ids are all the copy's stream id follows it; anything else (no
// prev_ids, another one, a stale copy) means a resync. So does a change
// without keys: a login before its keys are uploaded, but also a change of
// the user's cross-signing keys, which this server's sender (like
// others) announces as a change of a "device" named by the key, and which
// only the whole list (/user/devices) gives.
func verdict(l storage.RemoteDeviceList, u hsapi.RemoteDeviceListUpdate) changeVerdict {
	if l.Stale {
		return changeResync
	}
	if u.StreamID <= l.StreamID {
		return changeSeen
	}
	if len(u.PrevIDs) == 0 || (!u.Deleted && len(u.Keys) == 0) {
		return changeResync
	}
	for _, p := range u.PrevIDs {
		if p != l.StreamID {
			return changeResync
		}
	}
	return changeApply
}

// ReceiveDeviceListUpdate records a change of a remote user's device (an
// m.device_list_update EDU), for the device_lists.changed of the local
// users who share a room with them (their clients then ask for the
// user's keys again), and applies it to the copy of the user's list.
func (h *Handlers) ReceiveDeviceListUpdate(ctx context.Context, u hsapi.RemoteDeviceListUpdate) error {
	if h.isLocal(u.UserID) {
		return nil
	}
	if _, err := h.store.RecordRemoteDeviceChange(ctx, u.UserID, u.DeviceID, u.Deleted); err != nil {
		return err
	}
	if err := h.applyRemoteChange(ctx, u); err != nil {
		return err
	}
	h.notify.NotifyDeviceListChange(u.UserID)
	return nil
}

// applyRemoteChange keeps the copy of u's user's list (if there is one)
// up to date with u.
func (h *Handlers) applyRemoteChange(ctx context.Context, u hsapi.RemoteDeviceListUpdate) error {
	l, err := h.store.RemoteDeviceList(ctx, u.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // not copied: nothing to keep up to date
	}
	if err != nil {
		return err
	}
	switch verdict(l, u) {
	case changeSeen:
		return nil
	case changeApply:
		applied, err := h.store.ApplyRemoteDeviceChange(ctx, u.UserID, u.DeviceID, u.Keys, u.Deleted, l.StreamID, u.StreamID)
		if err != nil || applied {
			return err
		}
	}
	h.log.WithField("user_id", u.UserID).Debug("gap in a remote device list: fetched again at the next query")
	// Unless a fetch meanwhile brought the copy to this change already.
	return h.store.MarkRemoteDeviceListStale(ctx, u.UserID, u.StreamID)
}

// ReceiveSigningKeyUpdate records a change of a remote user's
// cross-signing keys (an m.signing_key_update EDU).
func (h *Handlers) ReceiveSigningKeyUpdate(ctx context.Context, userID string, masterKey, selfSigningKey json.RawMessage) error {
	if h.isLocal(userID) {
		return nil
	}
	if _, err := h.store.RecordRemoteDeviceChange(ctx, userID, "", false); err != nil {
		return err
	}
	if err := h.store.SetRemoteCrossSigningKeys(ctx, userID, masterKey, selfSigningKey); err != nil {
		return err
	}
	h.notify.NotifyDeviceListChange(userID)
	return nil
}

// copiedLists returns fresh copies of the device lists of users (remote
// ones), fetching again those stale or not copied yet for users who share
// a room with this server's; the users it has none for are left out (to
// be asked live).
func (h *Handlers) copiedLists(ctx context.Context, users []string) map[string]storage.RemoteDeviceList {
	out := map[string]storage.RemoteDeviceList{}
	var fetch []string
	for _, u := range users {
		l, err := h.store.RemoteDeviceList(ctx, u)
		switch {
		case err == nil && !l.Stale:
			out[u] = l
		case err == nil || errors.Is(err, storage.ErrNotFound):
			fetch = append(fetch, u)
		default:
			h.log.WithError(err).WithField("user_id", u).Warn("read a remote device list")
		}
	}
	if len(fetch) == 0 || h.remote == nil {
		return out
	}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(resyncConcurrency)
	for _, u := range fetch {
		g.Go(func() error {
			l, ok := h.resync(ctx, u)
			if ok {
				mu.Lock()
				out[u] = l
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// resync fetches userID's device list from their server and keeps it,
// if the user shares a room with this server's users (else the copy
// would not be kept up to date); a list found changed is a device-list
// change for the local users.
func (h *Handlers) resync(ctx context.Context, userID string) (storage.RemoteDeviceList, bool) {
	log := h.log.WithField("user_id", userID)
	rooms, err := h.store.JoinedRoomsOf(ctx, userID)
	if err != nil || len(rooms) == 0 {
		return storage.RemoteDeviceList{}, false
	}
	old, err := h.store.RemoteDeviceList(ctx, userID)
	had := err == nil
	ud, err := h.remote.QueryDevices(ctx, userID)
	if err != nil {
		log.WithError(err).Info("fetch a remote device list")
		return storage.RemoteDeviceList{}, false
	}
	l := storage.RemoteDeviceList{UserID: userID, StreamID: ud.StreamID, MasterKey: ud.MasterKey, SelfSigningKey: ud.SelfSigningKey,
		Devices: map[string]json.RawMessage{}}
	for _, d := range ud.Devices {
		l.Devices[d.DeviceID] = d.Keys
	}
	if err := h.store.ReplaceRemoteDeviceList(ctx, l); err != nil {
		log.WithError(err).Warn("keep a remote device list")
		return l, true
	}
	if had && !sameList(old, l) {
		if _, err := h.store.RecordRemoteDeviceChange(ctx, userID, "", false); err != nil {
			log.WithError(err).Warn("record a remote device-list change")
		}
		h.notify.NotifyDeviceListChange(userID)
	}
	return l, true
}

// sameList reports whether two copies hold the same devices and keys.
func sameList(a, b storage.RemoteDeviceList) bool {
	eq := func(x, y json.RawMessage) bool { return string(x) == string(y) }
	return eq(a.MasterKey, b.MasterKey) && eq(a.SelfSigningKey, b.SelfSigningKey) && maps.EqualFunc(a.Devices, b.Devices, eq)
}

// fromCopy fills resp with the keys of l's user, of the devices asked
// for (all when none).
func fromCopy(l storage.RemoteDeviceList, devices []string, resp *queryResponse) {
	keys := map[string]json.RawMessage{}
	for id, k := range l.Devices {
		if len(k) > 0 && (len(devices) == 0 || slices.Contains(devices, id)) {
			keys[id] = k
		}
	}
	resp.DeviceKeys[l.UserID] = keys
	if len(l.MasterKey) > 0 {
		resp.MasterKeys[l.UserID] = l.MasterKey
	}
	if len(l.SelfSigningKey) > 0 {
		resp.SelfSigningKeys[l.UserID] = l.SelfSigningKey
	}
}
