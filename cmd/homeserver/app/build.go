package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/appservices"
	"github.com/matrix-gouv/homeserver/federation"
	"github.com/matrix-gouv/homeserver/homeserver"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/remote"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi"
	"github.com/matrix-gouv/homeserver/roomserver"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
	rsremote "github.com/matrix-gouv/homeserver/roomserver/remote"
)

// built is what buildLocked made: the parts to start, in order, and the
// routes each listener serves.
type built struct {
	parts []part
	// clientRoutes and federationRoutes mount a component's routes on
	// the client and the federation listener's router.
	clientRoutes, federationRoutes []func(chi.Router)
}

// componentLog returns the logger of component name.
func (a *App) componentLog(name string) *logrus.Entry {
	return a.log.WithField(httputil.FieldComponent, name)
}

// buildLocked builds the components the App runs, in start order, on the
// open database and bus. Nothing is started.
func (a *App) buildLocked() (built, error) {
	var b built
	cfg := a.cfg
	// tokens resolves access tokens for the media component: the client
	// component itself when it runs here, its NATS client otherwise.
	var tokens api.TokenQuerier
	// openID resolves OpenID tokens for the federation component the same
	// way.
	var openID api.OpenIDQuerier
	// openIDLater hands openID to the federation component, built before
	// it is known.
	openIDLater := &openIDRef{}
	// keysLater hands the client component's key server to the
	// federation component the same way.
	keysLater := &keyServerRef{}
	edusLater := &eduReceiverRef{}
	profilesLater := &profileServerRef{}
	// The roomserver is built first: the client component holds it when
	// both run here. It still starts after the client component
	// (AllComponents' order); requests only arrive once every part has
	// started.
	var rs *roomserver.Component
	// policyLater hands the federation component, built after the
	// roomserver, to it: the roomserver asks rooms' policy servers
	// through it. Only when both run here (no NATS transport of
	// rsapi.PolicySigner: a roomserver alone sends unsigned events).
	policyLater := &policySignerRef{}
	if a.run[Roomserver] {
		var err error
		rd := roomserver.Deps{Global: &cfg.Global, DB: a.db, Bus: a.bus, Log: a.componentLog(Roomserver)}
		if a.run[Federation] {
			rd.Policy = policyLater
		}
		rs, err = roomserver.New(rd)
		if err != nil {
			return built{}, fmt.Errorf("build %s: %w", Roomserver, err)
		}
	}
	// The federation component is built before the client component,
	// which joins remote rooms through it; it starts after the
	// roomserver, whose output it sends. It needs the roomserver in its
	// process (no NATS transport of api.Federator yet): without it, it
	// serves only the key and version endpoints.
	var fed *federation.Component
	if a.run[Federation] {
		var err error
		fd := federation.Deps{Global: &cfg.Global, Config: &cfg.Federation, DB: a.db, Bus: a.bus, Log: a.componentLog(Federation),
			OpenID: openIDLater}
		if a.run[Client] {
			// Keys are answered by the client component of this process
			// (no NATS transport of api.KeyServer yet).
			fd.Keys, fd.EDUs, fd.Profiles = keysLater, edusLater, profilesLater
		}
		if rs != nil {
			fd.Rooms = rs
		}
		if fed, err = federation.New(fd); err != nil {
			return built{}, fmt.Errorf("build %s: %w", Federation, err)
		}
		policyLater.s = fed
	}
	if a.run[Client] {
		// The roomserver itself when it runs here, else its NATS client,
		// which the roomserver's process answers (roomserverService).
		var rooms rsremote.Roomserver = rs
		if rs == nil {
			rooms = rsremote.NewClient(a.bus)
		}
		hd := homeserver.Deps{
			Global: &cfg.Global, Config: &cfg.Client, DB: a.db, Log: a.componentLog(Client), Rooms: rooms, Directory: rooms, Bus: a.bus,
			// The bridges' questions are plain HTTP calls: every client
			// process asks them itself.
			AppServices: &cfg.AppServices, Bridges: appservices.NewQuerier(&cfg.AppServices, a.componentLog(Appservices)),
		}
		if fed != nil && rs != nil {
			hd.RemoteRooms = fed
		}
		if f := cfg.Federation; a.run[Federation] && !f.Open && len(f.AllowedServers) > 0 {
			// A closed federation: rooms created here say so in their
			// server ACL.
			for _, name := range append([]string{cfg.Global.ServerName}, f.AllowedServers...) {
				// ACL globs match host names, ports left out.
				if host, _, err := net.SplitHostPort(name); err == nil {
					name = host
				}
				hd.ServerACL = append(hd.ServerACL, name)
			}
		}
		if fed != nil {
			hd.RemoteKeys, hd.RemoteToDevice, hd.RemoteProfiles = fed, fed, fed
			if rs != nil {
				hd.DeviceLists, hd.EDUs = fed, fed
			}
		}
		hs, err := homeserver.New(hd)
		if err != nil {
			return built{}, fmt.Errorf("build %s: %w", Client, err)
		}
		tokens, openID = hs.Tokens(), hs.OpenID()
		openIDLater.q = openID
		keysLater.KeyServer = hs.KeyServer()
		edusLater.r = hs.EDUReceiver()
		profilesLater.ProfileServer = hs.ProfileServer()
		if rs != nil {
			// In one process, sync hears of events as soon as the
			// roomserver published them.
			if l := hs.OutputListener(); l != nil {
				rs.ListenOutput(l)
			}
		}
		b.parts = append(b.parts, part{name: Client, start: hs.Start, stop: hs.Stop}, a.tokenService(hs.Tokens(), hs.OpenID()))
		b.clientRoutes = append(b.clientRoutes, hs.Mount)
	} else {
		client := remote.NewTokenClient(a.bus)
		tokens, openID = client, client
		openIDLater.q = openID
	}
	if rs != nil {
		b.parts = append(b.parts, part{name: Roomserver, start: rs.Start, stop: rs.Stop}, a.roomserverService(rs))
	}
	if fed != nil {
		b.parts = append(b.parts, part{name: Federation, start: fed.Start, stop: fed.Stop})
		b.federationRoutes = append(b.federationRoutes, fed.Mount)
	}
	if a.run[Media] {
		// Remote media are fetched by the federation component when it
		// runs here; otherwise they answer 404 M_NOT_FOUND.
		// The roomserver itself when it runs here, else its NATS client:
		// the admin's room quarantine reads room timelines.
		var timeline mediaapi.RoomTimeline = rs
		if rs == nil {
			timeline = rsremote.NewClient(a.bus)
		}
		md := mediaapi.Deps{
			Global: &cfg.Global, Config: &cfg.Media, DB: a.db, Tokens: tokens, Rooms: timeline, Log: a.componentLog(Media),
		}
		if fed != nil {
			md.Remote = fed
		}
		media, err := mediaapi.New(md)
		if err != nil {
			return built{}, fmt.Errorf("build %s: %w", Media, err)
		}
		b.parts = append(b.parts, part{name: Media, start: media.Start, stop: media.Stop})
		b.clientRoutes = append(b.clientRoutes, media.Mount)
		if fed != nil {
			// Other servers fetch our media on the federation listener,
			// behind the signature check and allow-list.
			b.federationRoutes = append(b.federationRoutes, func(r chi.Router) { media.MountFederation(r.With(fed.RequireSignature)) })
		}
	}
	if a.run[Appservices] {
		var rooms rsremote.Roomserver = rs
		if rs == nil {
			rooms = rsremote.NewClient(a.bus)
		}
		as, err := appservices.New(appservices.Deps{Global: &cfg.Global, Config: &cfg.AppServices, DB: a.db, Bus: a.bus,
			Rooms: rooms, Tokens: tokens, Log: a.componentLog(Appservices)})
		if err != nil {
			return built{}, fmt.Errorf("build %s: %w", Appservices, err)
		}
		b.parts = append(b.parts, part{name: Appservices, start: as.Start, stop: as.Stop})
		b.clientRoutes = append(b.clientRoutes, as.Mount)
	}
	return b, nil
}

// tokenService is the part that answers other processes' access token
// queries on the bus with the client component's TokenQuerier. It starts
// after the client component and stops before it.
func (a *App) tokenService(tokens api.TokenQuerier, openID api.OpenIDQuerier) part {
	return a.busService(Client+" token service", func() (func(), error) {
		stopTokens, err := remote.ServeTokens(a.bus, tokens)
		if err != nil {
			return nil, err
		}
		stopOpenID, err := remote.ServeOpenID(a.bus, openID)
		if err != nil {
			stopTokens()
			return nil, err
		}
		return func() { stopOpenID(); stopTokens() }, nil
	})
}

// roomserverService is the part that answers other processes' roomserver
// calls on the bus (a client component running without the roomserver).
// It starts after the roomserver and stops before it, so that no request
// reaches a roomserver that is not running.
func (a *App) roomserverService(rs rsremote.Roomserver) part {
	return a.busService(Roomserver+" service", func() (func(), error) { return rsremote.Serve(a.bus, rs) })
}

// busService is the part that serves on the bus with serve while it runs.
func (a *App) busService(name string, serve func() (stop func(), err error)) part {
	var stop func()
	return part{
		name: name,
		start: func(context.Context) error {
			s, err := serve()
			if err != nil {
				return err
			}
			stop = s
			return nil
		},
		stop: func(context.Context) error {
			if stop != nil {
				stop()
			}
			return nil
		},
	}
}

// openIDRef is an OpenID querier known after its user is built: set before
// the parts start, read only after.
type openIDRef struct{ q api.OpenIDQuerier }

// QueryOpenIDToken implements api.OpenIDQuerier.
func (r *openIDRef) QueryOpenIDToken(ctx context.Context, token string) (string, error) {
	if r.q == nil {
		return "", api.ErrUnknownToken
	}
	return r.q.QueryOpenIDToken(ctx, token)
}

// policySignerRef is the federation component as the roomserver's
// rsapi.PolicySigner, known after the roomserver that uses it is built:
// set before the parts start, read only after.
type policySignerRef struct{ s rsapi.PolicySigner }

// PolicySign implements rsapi.PolicySigner.
func (p *policySignerRef) PolicySign(ctx context.Context, via string, pdu json.RawMessage) (string, error) {
	if p.s == nil {
		return "", rsapi.ErrPolicyServerUnavailable
	}
	return p.s.PolicySign(ctx, via, pdu)
}

// keyServerRef is the client component's key server, known after the
// federation component that uses it is built: set before the parts
// start, read only after.
type keyServerRef struct{ api.KeyServer }

// eduReceiverRef is the client component's receiver of typing, receipts
// and presence, known after the federation component is built; nil inside
// when the client component does not sync.
type eduReceiverRef struct{ r api.EDUReceiver }

// ReceiveTyping implements api.EDUReceiver.
func (e *eduReceiverRef) ReceiveTyping(ctx context.Context, roomID, userID string, typing bool) error {
	if e.r == nil {
		return nil
	}
	return e.r.ReceiveTyping(ctx, roomID, userID, typing)
}

// ReceiveReceipt implements api.EDUReceiver.
func (e *eduReceiverRef) ReceiveReceipt(ctx context.Context, roomID, userID, typ, threadID, eventID string, ts int64) error {
	if e.r == nil {
		return nil
	}
	return e.r.ReceiveReceipt(ctx, roomID, userID, typ, threadID, eventID, ts)
}

// ReceivePresence implements api.EDUReceiver.
func (e *eduReceiverRef) ReceivePresence(ctx context.Context, p api.Presence) error {
	if e.r == nil {
		return nil
	}
	return e.r.ReceivePresence(ctx, p)
}

// profileServerRef is the client component's profile server, known after
// the federation component is built.
type profileServerRef struct{ api.ProfileServer }
