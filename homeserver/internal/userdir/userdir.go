// Package userdir is the user directory: POST /user_directory/search, and
// the consumer of the roomserver's output that keeps the directory's
// rooms (who is joined where, which rooms are public) up to date. Profile
// changes, registrations, deactivations and im.vector.hide_profile reach
// the directory's tables in the transactions that make them
// (homeserver/storage), so only room changes come through the bus.
package userdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// durable names the directory's consumer of the roomserver's output.
const durable = "homeserver_userdir"

// Search limits.
const (
	defaultLimit = 10
	maxLimit     = 100
)

// Store is the directory's tables.
type Store interface {
	DirectoryMember(ctx context.Context, roomID string, u storage.DirectoryUser, joined bool) error
	DirectoryPublicRoom(ctx context.Context, roomID string, public bool) error
	SearchDirectory(ctx context.Context, q storage.DirectorySearch) ([]storage.DirectoryResult, bool, error)
	DirectoryNeedsBackfill(ctx context.Context) (bool, error)
	ActiveLocalUsers(ctx context.Context) ([]string, error)
}

// EventReader reads the state events a state resolution made current, and
// for the backfill the rooms of local users and their current state.
type EventReader interface {
	Event(ctx context.Context, eventID string) (rsapi.Event, error)
	RoomsOf(ctx context.Context, userID, membership string) ([]string, error)
	CurrentState(ctx context.Context, roomID string) ([]rsapi.Event, error)
}

// Deps is what the directory needs.
type Deps struct {
	ServerName string
	Store      Store
	// Bus and Rooms feed the directory; nil Bus: nothing consumed (the
	// admin CLI's component).
	Bus   *bus.Bus
	Rooms EventReader
	// SearchAll finds every local user (client.user_directory).
	SearchAll       bool
	MaxRequestBytes int64
	Log             *logrus.Entry
}

// Directory serves the search and feeds the tables.
type Directory struct {
	Deps
	stop func()
}

// New returns the directory; it consumes nothing until Start.
func New(d Deps) *Directory { return &Directory{Deps: d} }

// Start fills the directory's rooms from the roomserver when it knows
// none (see backfill), then attaches the durable consumer.
func (d *Directory) Start(ctx context.Context) error {
	if d.Bus == nil {
		return nil
	}
	if err := d.backfill(ctx); err != nil {
		return err
	}
	stop, err := d.Bus.Consume(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, durable, "", d.handle)
	if err != nil {
		return fmt.Errorf("consume roomserver output for the user directory: %w", err)
	}
	d.stop = stop
	return nil
}

// backfill reads, once, the current state of every room a local user is
// joined to: the roomserver's output stream keeps a week, so the rooms of
// a server older than the directory would otherwise be missing. It runs
// while the directory knows no membership at all (cheap when there is
// none to find); events the consumer then replays are applied again,
// which is harmless.
func (d *Directory) backfill(ctx context.Context) error {
	need, err := d.Store.DirectoryNeedsBackfill(ctx)
	if err != nil || !need {
		return err
	}
	users, err := d.Store.ActiveLocalUsers(ctx)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, u := range users {
		rooms, err := d.Rooms.RoomsOf(ctx, u, "join")
		if err != nil {
			return fmt.Errorf("user directory backfill: %w", err)
		}
		for _, roomID := range rooms {
			if done[roomID] {
				continue
			}
			done[roomID] = true
			state, err := d.Rooms.CurrentState(ctx, roomID)
			if err != nil {
				return fmt.Errorf("user directory backfill: %w", err)
			}
			for _, raw := range state {
				e, err := events.Parse(raw)
				if err != nil {
					continue
				}
				if err := d.apply(ctx, e); err != nil {
					return err
				}
			}
		}
	}
	if len(done) > 0 {
		d.Log.WithField("rooms", len(done)).Info("user directory filled from existing rooms")
	}
	return nil
}

// Stop detaches it once the message in hand is done.
func (d *Directory) Stop() {
	if d.stop != nil {
		d.stop()
	}
}

// handle records the membership and join rule changes an output event
// made current. Every write is an upsert or a delete: redelivery is safe.
func (d *Directory) handle(ctx context.Context, msg bus.Message) error {
	var out rsapi.OutputEvent
	if err := msg.Decode(&out); err != nil {
		return err
	}
	if out.SoftFailed || len(out.StateAdded) == 0 {
		return nil
	}
	for _, id := range out.StateAdded {
		raw := out.Event
		if id != out.Event.EventID {
			var err error
			raw, err = d.Rooms.Event(ctx, id)
			if errors.Is(err, rsapi.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read state event %s: %w", id, err)
			}
		}
		e, err := events.Parse(raw)
		if err != nil {
			d.Log.WithError(err).WithField("event_id", id).Warn("user directory: unparsable state event")
			continue
		}
		if err := d.apply(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// apply records one state event that became current.
func (d *Directory) apply(ctx context.Context, e events.Event) error {
	if e.StateKey == nil {
		return nil
	}
	switch e.Type {
	case "m.room.member":
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(e.Content, &c) // a bad profile is no profile
		u := storage.DirectoryUser{UserID: *e.StateKey, Local: strings.HasSuffix(*e.StateKey, ":"+d.ServerName),
			DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
		return d.Store.DirectoryMember(ctx, e.RoomID, u, e.Membership() == "join")
	case "m.room.join_rules":
		if *e.StateKey != "" {
			return nil
		}
		var c struct {
			JoinRule string `json:"join_rule"`
		}
		_ = json.Unmarshal(e.Content, &c)
		return d.Store.DirectoryPublicRoom(ctx, e.RoomID, c.JoinRule == "public")
	}
	return nil
}

// searchRequest is the body of POST /user_directory/search.
type searchRequest struct {
	SearchTerm *string `json:"search_term"`
	Limit      *int    `json:"limit"`
}

// result is one user found.
type result struct {
	UserID      string  `json:"user_id"`
	DisplayName *string `json:"display_name,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// Search is POST /user_directory/search.
func (d *Directory) Search(r *http.Request) (any, error) {
	var req searchRequest
	if err := httputil.DecodeJSON(r, d.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.SearchTerm == nil {
		return nil, httputil.MissingParam("search_term is required")
	}
	limit := defaultLimit
	if req.Limit != nil {
		if *req.Limit < 0 {
			return nil, httputil.InvalidParam("limit must not be negative")
		}
		limit = min(*req.Limit, maxLimit)
	}
	found, limited, err := d.Store.SearchDirectory(r.Context(), storage.DirectorySearch{
		Searcher: auth.DeviceFrom(r.Context()).UserID, Term: *req.SearchTerm, Limit: limit, AllLocal: d.SearchAll,
	})
	if err != nil {
		return nil, err
	}
	results := make([]result, len(found))
	for i, f := range found {
		results[i] = result{UserID: f.UserID, DisplayName: nonEmpty(f.DisplayName), AvatarURL: nonEmpty(f.AvatarURL)}
	}
	return map[string]any{"results": results, "limited": limited}, nil
}

func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}
