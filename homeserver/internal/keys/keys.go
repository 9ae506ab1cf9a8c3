// Package keys is the server's part of end-to-end encryption: it stores
// and relays, and never holds a private key or a plaintext. It serves
// device keys, one-time and fallback keys (/keys/upload, /keys/query,
// /keys/claim, /keys/changes), to-device messages (PUT /sendToDevice),
// cross-signing keys and signatures (/keys/device_signing/upload,
// /keys/signatures/upload) and server-side key backup (/room_keys/...).
//
// It sits in the homeserver component above homeserver/storage. /sync,
// which delivers to-device messages and device-list changes, is another
// package (homeserver/sync); this one wakes it through Notifier. Remote
// users' keys and to-device messages go through RemoteKeys and
// RemoteToDevice, which federation will implement.
package keys

import (
	"context"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Notifier wakes the /sync requests that a change concerns.
type Notifier interface {
	// NotifyToDevice: new to-device messages for userID.
	NotifyToDevice(userID string)
	// NotifyDeviceListChange: userID's devices or cross-signing keys changed; everyone sharing a room with them must hear.
	NotifyDeviceListChange(userID string)
	// NotifyKeyCounts: the one-time or fallback keys of a device changed
	// (an upload, a claim), so that /sync reports its new counts.
	NotifyKeyCounts(userID, deviceID string)
}

// RemoteKeys asks other servers for their users' keys; the federation
// component implements it.
type RemoteKeys = hsapi.RemoteKeys

// RemoteQueryResult is a remote server's answer to a key query.
type RemoteQueryResult = hsapi.KeysQueryResult

// RemoteToDevice sends to-device messages to another server's users.
type RemoteToDevice = hsapi.RemoteToDevice

// RoomsOfUser is what /keys/changes asks of the roomserver: the rooms a
// user is joined to.
type RoomsOfUser interface {
	RoomsOf(ctx context.Context, userID, membership string) ([]string, error)
}

// Deps is what the key handlers need.
type Deps struct {
	Global *config.Global
	Config *config.Client
	Store  *storage.Store
	// UIA runs user-interactive auth for /keys/device_signing/upload;
	// the account package's server (m.login.password).
	UIA *uia.Server
	// Notifier wakes /sync. Nil wakes nobody.
	Notifier Notifier
	// Rooms answers which rooms users share, for /keys/changes. Nil:
	// /keys/changes reports every changed user.
	Rooms RoomsOfUser
	// Remote queries and claims other servers' keys. Nil until federation
	// exists: remote servers then appear in failures.
	Remote RemoteKeys
	// RemoteToDevice sends to-device messages to other servers. Nil until
	// federation exists: such messages are dropped with a log line.
	RemoteToDevice RemoteToDevice
	// DeviceListPos turns a sync token into a position in the device-list
	// change stream, for /keys/changes. Nil: tokens are taken to be that
	// position in decimal. /sync, which mints the tokens, provides it.
	DeviceListPos func(token string) (int64, error)
	// Bridges, when set, is handed the to-device messages of local
	// users, for the application services whose users they are
	// (MSC2409).
	Bridges ToDeviceSink
	Log     *logrus.Entry
}

// ToDeviceSink hands to-device messages on to the application services.
type ToDeviceSink interface {
	ToDevice(ctx context.Context, sender, eventType string, msgs []storage.ToDeviceMessage)
}

// Handlers serves the E2EE endpoints.
type Handlers struct {
	global         *config.Global
	cfg            *config.Client
	store          *storage.Store
	uia            *uia.Server
	notify         Notifier
	rooms          RoomsOfUser
	remote         RemoteKeys
	remoteToDevice RemoteToDevice
	listPos        func(token string) (int64, error)
	bridges        ToDeviceSink
	log            *logrus.Entry
}

// New returns the key handlers.
func New(d Deps) *Handlers {
	log := d.Log
	if log == nil {
		log = logrus.NewEntry(logrus.New())
	}
	notify := d.Notifier
	if notify == nil {
		notify = noNotifier{}
	}
	return &Handlers{global: d.Global, cfg: d.Config, store: d.Store, uia: d.UIA, notify: notify, rooms: d.Rooms,
		remote: d.Remote, remoteToDevice: d.RemoteToDevice, listPos: d.DeviceListPos, bridges: d.Bridges, log: log}
}

// noNotifier is the Notifier of Deps without one.
type noNotifier struct{}

func (noNotifier) NotifyToDevice(string)          {}
func (noNotifier) NotifyDeviceListChange(string)  {}
func (noNotifier) NotifyKeyCounts(string, string) {}

// Log field names of the package.
const (
	fieldServer    = "server"
	fieldEventType = "event_type"
	fieldCount     = "count"
)

func (h *Handlers) decode(r *http.Request, v any) error {
	return httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, v)
}

// serverOf returns the server name of a user id, "" when it has none.
func serverOf(userID string) string {
	if !strings.HasPrefix(userID, "@") {
		return ""
	}
	_, server, ok := strings.Cut(userID, ":")
	if !ok {
		return ""
	}
	return server
}

func (h *Handlers) isLocal(userID string) bool { return serverOf(userID) == h.global.ServerName }
