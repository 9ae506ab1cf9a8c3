// Package roomserver owns the room DAG: it builds, authorises and persists
// events (with gomatrixserverlib), holds room state as shared snapshots
// keyed by numeric ids, resolves state (v2, v2.1) when the DAG forks,
// serves history, and publishes every accepted event on the bus, in order
// per room, for sync, federation, appservices and push to consume.
//
// Events of one room are processed strictly in order by a per-room
// sequencer (internal/input); different rooms never wait on each other. An
// event is acknowledged only once it and the new state are committed.
//
// Only cmd/ builds it; other components reach it through roomserver/api:
// a direct call in one process, roomserver/remote over NATS across
// processes.
package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/directory"
	"github.com/matrix-gouv/homeserver/roomserver/internal/input"
	"github.com/matrix-gouv/homeserver/roomserver/internal/output"
	"github.com/matrix-gouv/homeserver/roomserver/internal/query"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	rsstorage "github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Cache bounds: events held parsed, and state entries held in snapshots.
const (
	eventCacheSize    = 100_000
	snapshotCacheSize = 2_000_000
)

// Deps is what the roomserver needs from cmd/.
type Deps struct {
	// Global holds the server name and signing key events are signed with.
	Global *config.Global
	// DB holds the roomserver's tables (events, state snapshots, rooms).
	DB *storage.DB
	// Bus carries the output events.
	Bus *bus.Bus
	// Log is already tagged with component=roomserver.
	Log *logrus.Entry
	// Policy asks rooms' policy servers to sign the events local users
	// send (the federation component). Nil: they are sent unsigned.
	Policy api.PolicySigner
}

// Component is the roomserver. It implements api.Writer and api.Reader.
type Component struct {
	*query.Reader
	input     *input.Inputter
	publisher *output.Publisher
	// directory holds aliases and the public room list (directory.go).
	directory *directory.Directory
}

// New builds the roomserver; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	key, err := config.ParseSigningKey(deps.Global.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("roomserver: signing key: %w", err)
	}
	store := rsstorage.New(deps.DB)
	versions := &roomVersions{store: store}
	events := state.NewEvents(store, eventCacheSize, versions.of)
	snapshots := state.NewSnapshots(store, snapshotCacheSize)
	tuples := state.NewTuples(store)
	c := &Component{Reader: query.New(store, events, snapshots, tuples)}
	c.directory = directory.New(store, c.Reader)
	if deps.Bus != nil {
		c.publisher = output.New(store, deps.Bus, deps.Log)
	}
	c.input = input.New(input.Deps{
		Store: store, Events: events, Snapshots: snapshots, Tuples: tuples, Resolver: state.NewResolver(events),
		ServerName: spec.ServerName(deps.Global.ServerName), KeyID: gomatrixserverlib.KeyID(key.ID), Key: key.Private,
		Log: deps.Log, Policy: deps.Policy, Queued: c.queued,
	})
	return c, nil
}

// ListenOutput makes l be told of each output event as soon as the bus
// stored it (api.OutputListener), for a consumer in this process. Call it
// before Start.
func (c *Component) ListenOutput(l api.OutputListener) {
	if c.publisher != nil {
		c.publisher.Listen(l)
	}
}

// queued hands output events just committed to the publisher.
func (c *Component) queued(entries []rsstorage.OutboxEntry) {
	if c.publisher != nil {
		c.publisher.Hand(entries)
	}
}

// Start readies the input path (Inputter.Prepare) and starts publishing
// output events, beginning with any a previous run committed but did not
// publish.
func (c *Component) Start(ctx context.Context) error {
	if err := c.input.Prepare(ctx); err != nil {
		return fmt.Errorf("roomserver: %w", err)
	}
	if c.publisher != nil {
		c.publisher.Start(ctx)
	}
	return nil
}

// Stop publishes what is queued and stops.
func (c *Component) Stop(ctx context.Context) error {
	if c.publisher != nil {
		c.publisher.Stop(ctx)
	}
	return nil
}

// CreateRoom implements api.Writer.
func (c *Component) CreateRoom(ctx context.Context, req api.CreateRoomRequest) (string, []string, error) {
	return c.input.CreateRoom(ctx, req)
}

// Send implements api.Writer.
func (c *Component) Send(ctx context.Context, roomID string, ev api.ProtoEvent) (api.Event, error) {
	return c.input.Send(ctx, roomID, ev)
}

// InputEvents implements api.Writer.
func (c *Component) InputEvents(ctx context.Context, roomID string, events []json.RawMessage) ([]api.InputResult, error) {
	return c.input.InputEvents(ctx, roomID, events)
}

var (
	_ api.Writer    = (*Component)(nil)
	_ api.Reader    = (*Component)(nil)
	_ api.Relations = (*Component)(nil)
)

// EventTemplate implements api.Federator.
func (c *Component) EventTemplate(ctx context.Context, roomID string, ev api.ProtoEvent) (api.EventTemplate, error) {
	return c.input.EventTemplate(ctx, roomID, ev)
}

// ImportRoom implements api.Federator.
func (c *Component) ImportRoom(ctx context.Context, req api.ImportRoomRequest) (api.InputResult, error) {
	return c.input.ImportRoom(ctx, req)
}

// InputWithState implements api.Federator.
func (c *Component) InputWithState(ctx context.Context, req api.StateInputRequest) (api.InputResult, error) {
	return c.input.InputWithState(ctx, req)
}

// Backfill implements api.Federator.
func (c *Component) Backfill(ctx context.Context, req api.BackfillRequest) (int, error) {
	return c.input.Backfill(ctx, req)
}

// ImportMembership implements api.Federator.
func (c *Component) ImportMembership(ctx context.Context, req api.ImportMembershipRequest) (api.InputResult, error) {
	return c.input.ImportMembership(ctx, req)
}

var _ api.Federator = (*Component)(nil)
