// Package homeserver is the client-server API component: accounts, devices,
// login and tokens, the room API (over the roomserver's api), and (in later
// packages) sync, E2EE keys, to-device, profiles, presence, typing,
// receipts, account data and push rules.
//
// cmd/ builds it with New and mounts its routes on the client listener;
// other components reach it only through homeserver/api.
package homeserver

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	asapi "github.com/matrix-gouv/homeserver/appservices/api"
	"github.com/matrix-gouv/homeserver/config"
	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/account"
	"github.com/matrix-gouv/homeserver/homeserver/internal/accountdata"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/bridges"
	"github.com/matrix-gouv/homeserver/homeserver/internal/calls"
	"github.com/matrix-gouv/homeserver/homeserver/internal/directory"
	"github.com/matrix-gouv/homeserver/homeserver/internal/ephemeral"
	"github.com/matrix-gouv/homeserver/homeserver/internal/info"
	"github.com/matrix-gouv/homeserver/homeserver/internal/keys"
	"github.com/matrix-gouv/homeserver/homeserver/internal/profile"
	"github.com/matrix-gouv/homeserver/homeserver/internal/push"
	"github.com/matrix-gouv/homeserver/homeserver/internal/reports"
	"github.com/matrix-gouv/homeserver/homeserver/internal/rooms"
	"github.com/matrix-gouv/homeserver/homeserver/internal/search"
	"github.com/matrix-gouv/homeserver/homeserver/internal/slidingsync"
	"github.com/matrix-gouv/homeserver/homeserver/internal/spaces"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/internal/syncv3"
	"github.com/matrix-gouv/homeserver/homeserver/internal/userdir"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// RoomReadWriter is what the client API asks of the roomserver: to create
// rooms and send events, and to read rooms. In one process cmd/ passes the
// roomserver component itself; split across processes, roomserver/remote's
// NATS client of the same interfaces.
type RoomReadWriter interface {
	rsapi.Writer
	rsapi.Reader
	rsapi.Relations
}

// Deps is what the component needs from cmd/.
type Deps struct {
	Global *config.Global
	Config *config.Client
	DB     *dbstorage.DB
	Log    *logrus.Entry
	// Rooms is the roomserver. Nil only for a component that serves no
	// requests (the admin CLI's); its room endpoints are then not mounted.
	Rooms RoomReadWriter
	// Directory is the roomserver's room directory (aliases, public room
	// list). Nil like Rooms: its endpoints are then not mounted.
	Directory directory.Roomserver
	// Bus carries the roomserver's output to sync. Nil like Rooms: sync
	// is then not mounted.
	Bus *bus.Bus
	// AppServices are the registered application services, whose
	// as_tokens authenticate and whose exclusive namespaces are reserved.
	// Nil: none.
	AppServices *config.AppServices
	// Bridges asks application services about users and aliases this
	// server does not know, and pings them. Nil: nobody is asked.
	Bridges asapi.Querier
	// RemoteRooms joins rooms of other servers and invites their users
	// (the federation component). Nil: neither.
	RemoteRooms fedapi.RemoteRooms
	// RemoteKeys and RemoteToDevice reach other servers' users' keys and
	// devices (the federation component). Nil: those users' keys are
	// failures and their to-device messages dropped.
	RemoteKeys     api.RemoteKeys
	RemoteToDevice api.RemoteToDevice
	// DeviceLists tells other servers of local users' device changes (the
	// federation component). Nil: they are not told.
	DeviceLists api.DeviceListSender
	// EDUs tells other servers of local users' typing and read receipts
	// (the federation component). Nil: they are not told.
	EDUs api.EDUSender
	// RemoteProfiles looks up other servers' users' profiles (the
	// federation component). Nil: they answer 404.
	RemoteProfiles api.RemoteProfiles
	// ServerACL is the servers rooms created here allow in their
	// m.room.server_acl; nil: no ACL.
	ServerACL []string
}

// Component is the client-server API.
type Component struct {
	store   *storage.Store
	auth    *auth.Authenticator
	account *account.Handlers
	info    *info.Handlers
	// rooms, spaces and reports are nil when Deps.Rooms was.
	rooms   *rooms.Handlers
	spaces  *spaces.Handlers
	reports *reports.Handlers
	// directory is nil when Deps.Directory was.
	directory *directory.Handlers
	// push is nil when Deps.Rooms was.
	push *push.Service
	// The sync machinery and the endpoints that feed it; nil when
	// Deps.Rooms or Deps.Bus was.
	notifier    *streams.Notifier
	typing      *streams.Typing
	feeder      *streams.Feeder
	sync        *syncv3.Handlers
	slidingSync *slidingsync.Handlers
	accountData *accountdata.Handlers
	ephemeral   *ephemeral.Handlers
	// stopTyping ends the typing expiry loop.
	stopTyping context.CancelFunc
	typingDone chan struct{}
	// keys is the E2EE relay (device keys, to-device, cross-signing,
	// key backup).
	keys *keys.Handlers
	// profile serves profiles; propagator (nil when Deps.Rooms was)
	// carries name and avatar changes into member events.
	profile    *profile.Handlers
	propagator *profile.Propagator
	// userdir is the user directory and indexer the search index's
	// feeder; nil when Deps.Rooms or Deps.Bus was.
	userdir *userdir.Directory
	indexer *search.Indexer
	// calls serves TURN, OpenID tokens and MatrixRTC transports; delayed
	// (nil when Deps.Rooms was) the delayed events of MSC4140.
	calls   *calls.Handlers
	delayed *calls.Delayed
	// bridges serves the application service ping and the third-party
	// lookups; nil when Deps.Bridges was.
	bridges *bridges.Handlers
}

// New builds the component; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	store := storage.New(deps.DB)
	rl := deps.Config.RateLimits.Request
	authn := auth.NewAuthenticator(store, httputil.NewLimiter(rl.PerSecond, rl.Burst), deps.AppServices)
	c := &Component{
		store: store,
		auth:  authn,
		info:  info.New(deps.Global, deps.Config),
	}
	// What wakes /sync when keys, to-device messages or devices change.
	var keysNotifier keys.Notifier = noSyncNotifier{}
	// Ephemeral events for the bridges that asked for them; nil: none.
	edus := newEDUPublisher(deps.Bus, deps.AppServices, store, deps.Log)
	if deps.Rooms != nil && deps.Bus != nil {
		if err := c.buildSync(deps, store, edus); err != nil {
			return nil, err
		}
		keysNotifier = streams.KeysNotifier{Notifier: c.notifier, Positions: store}
	}
	if edus != nil {
		keysNotifier = bridgeKeysNotifier{next: keysNotifier, edus: edus}
	}
	if deps.DeviceLists != nil {
		keysNotifier = federatedKeysNotifier{next: keysNotifier, store: store, sender: deps.DeviceLists,
			suffix: ":" + deps.Global.ServerName, log: deps.Log}
	}
	c.account = account.New(account.Deps{Global: deps.Global, Config: deps.Config, Store: store, Auth: authn, DeviceLists: keysNotifier,
		AppServices: deps.AppServices})
	kd := keys.Deps{Global: deps.Global, Config: deps.Config, Store: store, UIA: c.account.UIA(),
		Notifier: keysNotifier, Log: deps.Log}
	if c.notifier != nil {
		kd.DeviceListPos = syncv3.DeviceListPos
	}
	if edus != nil {
		kd.Bridges = edus
	}
	if deps.Rooms != nil {
		kd.Rooms = deps.Rooms
	}
	kd.Remote, kd.RemoteToDevice = deps.RemoteKeys, deps.RemoteToDevice
	c.keys = keys.New(kd)
	pd := profile.Deps{ServerName: deps.Global.ServerName, Store: store, MaxRequestBytes: deps.Config.MaxRequestBytes,
		Remote: deps.RemoteProfiles, Log: deps.Log}
	if deps.Rooms != nil {
		c.propagator = profile.NewPropagator(deps.Rooms, store, deps.Log, 0, 0)
		pd.Propagator = c.propagator
	}
	c.profile = profile.New(pd)
	c.calls = calls.New(deps.Global.ServerName, &deps.Config.Calls, store)
	if deps.Rooms != nil && deps.Bus != nil {
		c.userdir = userdir.New(userdir.Deps{ServerName: deps.Global.ServerName, Store: store, Bus: deps.Bus, Rooms: deps.Rooms,
			SearchAll: deps.Config.UserDirectory.SearchAllUsers, MaxRequestBytes: deps.Config.MaxRequestBytes, Log: deps.Log})
		c.indexer = &search.Indexer{Bus: deps.Bus, Store: store, Log: deps.Log}
	}
	if deps.Bridges != nil {
		c.bridges = bridges.New(deps.Bridges, deps.Config.MaxRequestBytes)
	}
	if deps.Directory != nil {
		dd := directory.Deps{Global: deps.Global, Config: deps.Config, Rooms: deps.Directory, AppServices: deps.AppServices, Log: deps.Log}
		if deps.Bridges != nil {
			dd.Bridges = deps.Bridges
		}
		if deps.RemoteRooms != nil {
			dd.Remote = deps.RemoteRooms
		}
		c.directory = directory.New(dd)
	}
	if deps.Rooms != nil {
		rd := rooms.Deps{Global: deps.Global, Config: deps.Config, Store: store, Rooms: deps.Rooms, Profiles: c.profile, Remote: deps.RemoteRooms,
			ServerACL: deps.ServerACL}
		if deps.Bridges != nil {
			rd.Bridges = deps.Bridges
		}
		if c.directory != nil {
			rd.Directory = c.directory
		}
		if c.notifier != nil {
			rd.Synced = c.notifier
			rd.TxnIDs = streams.TxnIDs{Notifier: c.notifier, Store: store}
		} else {
			// No sync: nobody is ignored, nothing is read, and rule
			// changes reach clients only through GET /pushrules.
			p, err := push.New(push.Deps{Global: deps.Global, Config: &deps.Config.Push, Store: store, Rooms: deps.Rooms, Log: deps.Log})
			if err != nil {
				return nil, err
			}
			c.push = p
		}
		c.rooms = rooms.New(rd)
		c.delayed = calls.NewDelayed(calls.DelayedDeps{Store: store, Send: c.rooms, Rooms: deps.Rooms,
			MaxDelay: deps.Config.Calls.MaxEventDelay.Std(), MaxRequestBytes: deps.Config.MaxRequestBytes, Log: deps.Log, Bus: deps.Bus})
		sd := spaces.Deps{Rooms: deps.Rooms, Preview: c.rooms, Reader: deps.Rooms}
		if deps.RemoteRooms != nil {
			sd.Remote = deps.RemoteRooms
		}
		if c.directory != nil {
			sd.Aliases = c.directory
		}
		c.spaces = spaces.New(sd)
		c.reports = reports.New(reports.Deps{Config: deps.Config, Store: store, Rooms: deps.Rooms, Events: c.rooms})
	}
	return c, nil
}

// buildSync builds /sync and what feeds it: the notifier, the feeder of
// the roomserver's output (which has push evaluate each event before
// clients are woken), typing, receipts, presence, account data and push.
func (c *Component) buildSync(deps Deps, store *storage.Store, edus *eduPublisher) error {
	presence := !deps.Config.Presence.Disabled
	c.notifier = streams.NewNotifier(deps.Global.ServerName)
	c.typing = streams.NewTyping(c.notifier, 0)
	ignored := newIgnoredUsers(store)
	c.accountData = accountdata.New(accountdata.Deps{Store: store, Notifier: accountDataHook{next: c.notifier, ignored: ignored},
		MaxRequestBytes: deps.Config.MaxRequestBytes})
	p, err := push.New(push.Deps{Global: deps.Global, Config: &deps.Config.Push, Store: store, Rooms: deps.Rooms,
		Ignored: ignored, Receipts: readPositions{store}, Notifier: pushRulesChanged{c.accountData}, Log: deps.Log})
	if err != nil {
		return err
	}
	c.push = p
	pending := &streams.PendingActions{}
	c.feeder = &streams.Feeder{Bus: deps.Bus, Store: store, Rooms: deps.Rooms, Notifier: c.notifier,
		Processor: p.Processor(), Pending: pending, Log: deps.Log}
	if deps.DB.Dialect == dbstorage.Postgres {
		// Each PostgreSQL commit is a WAL flush of its own; SQLite's
		// writes already share commits (see streams.Feeder.WriteLinger).
		c.feeder.WriteLinger = streams.PostgresWriteLinger
	}
	ed := ephemeral.Deps{
		Store: store, Rooms: deps.Rooms, Notifier: c.notifier, Typing: c.typing, AccountData: c.accountData,
		Unread: pending, Presence: presence, IdleAfter: syncv3.IdleAfter, MaxRequestBytes: deps.Config.MaxRequestBytes,
		Federation: deps.EDUs, Log: deps.Log,
	}
	if edus != nil {
		ed.Bridges = edus
	}
	c.ephemeral = ephemeral.New(ed)
	c.sync = syncv3.New(syncv3.Deps{
		Store: store, Rooms: deps.Rooms, Notifier: c.notifier, Typing: c.typing, Log: deps.Log,
		Counter: pushCounter{store: store, pending: pending}, Ignored: ignored, PushRules: pushRulesContent{p.Rules()},
		Presence: presence, MaxRequestBytes: deps.Config.MaxRequestBytes, Federation: deps.EDUs,
	})
	c.slidingSync = slidingsync.New(slidingsync.Deps{V3: c.sync, Rooms: deps.Rooms, Store: store, Notifier: c.notifier,
		Log: deps.Log, MaxRequestBytes: deps.Config.MaxRequestBytes})
	return nil
}

// noSyncNotifier is the E2EE relay's keys.Notifier when this component
// serves no /sync (the admin CLI's): there is nobody to wake.
type noSyncNotifier struct{}

func (noSyncNotifier) NotifyToDevice(string)          {}
func (noSyncNotifier) NotifyDeviceListChange(string)  {}
func (noSyncNotifier) NotifyKeyCounts(string, string) {}

// Start starts push's sender, loads the sync streams' positions and
// starts consuming the roomserver's output.
func (c *Component) Start(ctx context.Context) error {
	if c.propagator != nil {
		if err := c.propagator.Start(ctx); err != nil {
			return err
		}
	}
	if c.delayed != nil {
		if err := c.delayed.Start(ctx); err != nil {
			return err
		}
	}
	if c.userdir != nil {
		if err := c.userdir.Start(ctx); err != nil {
			return err
		}
		if err := c.indexer.Start(ctx); err != nil {
			return err
		}
	}
	if err := c.account.EnsureAppServiceUsers(ctx); err != nil {
		return err
	}
	if c.push != nil {
		if err := c.push.Start(ctx); err != nil {
			return err
		}
	}
	if c.notifier == nil {
		return nil
	}
	// Typing positions start past every position of an earlier run.
	typingStart := time.Now().UnixMicro()
	if err := c.notifier.Load(ctx, c.store, typingStart); err != nil {
		return err
	}
	c.typing.Reset(typingStart)
	if err := c.feeder.Start(ctx); err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopTyping, c.typingDone = cancel, make(chan struct{})
	go func() {
		defer close(c.typingDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
				c.typing.Expire()
				if n%60 == 0 {
					// Sliding sync connections unused for long go.
					c.slidingSync.Sweep()
				}
			}
		}
	}()
	return nil
}

// Stop stops consuming and waits for the event in hand, and stops
// push's sender.
func (c *Component) Stop(ctx context.Context) error {
	// The feeder first: a batch in hand still hands work to push.
	if c.feeder != nil {
		c.feeder.Stop()
	}
	if c.userdir != nil {
		c.userdir.Stop()
		c.indexer.Stop()
	}
	if c.push != nil {
		if err := c.push.Stop(ctx); err != nil {
			return err
		}
	}
	if c.stopTyping != nil {
		c.stopTyping()
		<-c.typingDone
	}
	if c.delayed != nil {
		if err := c.delayed.Stop(ctx); err != nil {
			return err
		}
	}
	if c.propagator != nil {
		return c.propagator.Stop(ctx)
	}
	return nil
}

// OpenID returns the component's OpenIDQuerier, for the federation
// component's /openid/userinfo in the same process and for serving it on
// the bus.
func (c *Component) OpenID() api.OpenIDQuerier { return c.calls }

// EDUReceiver takes other servers' users' typing and read receipts (for
// the federation component); nil when this component does not sync.
func (c *Component) EDUReceiver() api.EDUReceiver {
	if c.ephemeral == nil {
		return nil
	}
	return c.ephemeral
}

// ProfileServer answers other servers' profile queries (for the
// federation component).
func (c *Component) ProfileServer() api.ProfileServer { return c.profile }

// KeyServer answers other servers about local users' keys and delivers
// their to-device messages (for the federation component).
func (c *Component) KeyServer() api.KeyServer { return c.keys }

// OutputListener returns what hears of the roomserver's output events as
// soon as they are published, when the roomserver runs in this process
// (sync's feeder), or nil when this component does not sync.
func (c *Component) OutputListener() rsapi.OutputListener {
	if c.feeder == nil {
		return nil
	}
	return c.feeder
}

// Tokens returns the component's TokenQuerier, for other components in the
// same process and for serving it on the bus.
func (c *Component) Tokens() api.TokenQuerier { return c.auth }

// CreateUser creates a local account for the admin CLI and returns its
// user id; password may be empty for an account that cannot log in by
// password.
func (c *Component) CreateUser(ctx context.Context, localpart, password string, admin bool) (userID string, err error) {
	return c.account.AdminCreateUser(ctx, localpart, password, admin)
}

// ResetPassword sets a new password for user (a localpart or user id) and
// logs out all its devices.
func (c *Component) ResetPassword(ctx context.Context, user, password string) (userID string, err error) {
	return c.account.AdminResetPassword(ctx, user, password)
}

// Deactivate deactivates user's account and logs out all its devices; the
// user id is never reused.
func (c *Component) Deactivate(ctx context.Context, user string) (userID string, err error) {
	return c.account.AdminDeactivate(ctx, user)
}

// CreateRegistrationToken stores a registration token usable uses times
// (0: unlimited), for the admin CLI.
func (c *Component) CreateRegistrationToken(ctx context.Context, token string, uses int) error {
	t := storage.RegistrationToken{Token: token}
	if uses > 0 {
		t.UsesAllowed = &uses
	}
	return c.store.CreateRegistrationToken(ctx, t)
}
