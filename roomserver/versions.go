package roomserver

import (
	"context"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"

	rsstorage "github.com/matrix-gouv/homeserver/roomserver/storage"
)

// roomVersions maps room nids to their versions, which never change.
type roomVersions struct {
	store *rsstorage.Store

	mu    sync.Mutex // guards known
	known map[int64]gomatrixserverlib.IRoomVersion
}

func (v *roomVersions) of(roomNID int64) (gomatrixserverlib.IRoomVersion, error) {
	v.mu.Lock()
	if ver, ok := v.known[roomNID]; ok {
		v.mu.Unlock()
		return ver, nil
	}
	v.mu.Unlock()
	s, err := v.store.RoomVersionOf(context.Background(), roomNID)
	if err != nil {
		return nil, err
	}
	ver, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(s))
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.known == nil {
		v.known = map[int64]gomatrixserverlib.IRoomVersion{}
	}
	v.known[roomNID] = ver
	v.mu.Unlock()
	return ver, nil
}
