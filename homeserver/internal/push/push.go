// Package push is the homeserver's push notifications: users' push rules
// (the /pushrules endpoints, and m.push_rules for /sync), the evaluation
// of every accepted event against the rules of each local member
// (Processor, whose actions make the unread counts and /notifications),
// pushers (/pushers) and the Sender that delivers notifications to http
// pushers' push gateways from a queue in the database.
//
// It sits in the homeserver component above homeserver/internal/pushrules
// (types and evaluation) and homeserver/storage (tables), and reads rooms
// through roomserver/api. Sync's feeder (homeserver/internal/streams)
// calls Processor.ProcessEvent for every output event, in stream order,
// before waking clients; homeserver/push.go adapts the two.
package push

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// RoomReader is what push asks of the roomserver: state and events, and
// the relation aggregations of the events /notifications shows.
type RoomReader interface {
	events.Relations
	RoomVersion(ctx context.Context, roomID string) (string, error)
	CurrentState(ctx context.Context, roomID string) ([]rsapi.Event, error)
	CurrentStateEvent(ctx context.Context, roomID string, key rsapi.StateKey) (rsapi.Event, error)
	Event(ctx context.Context, eventID string) (rsapi.Event, error)
}

// IgnoredUsers tells whom a user ignores (m.ignored_user_list account
// data). It is called for every member of every room an event is sent to:
// it must answer from memory in the common case.
type IgnoredUsers interface {
	IgnoredUsers(ctx context.Context, userID string) (map[string]bool, error)
}

// AccountDataNotifier is told when a user's push rules changed, so that
// the user's clients get the new m.push_rules account data in /sync.
type AccountDataNotifier interface {
	Changed(ctx context.Context, userID string) error
}

// ReceiptPositions returns the stream positions a user has read up to in
// a room: the latest unthreaded receipt (m.read or m.read.private) and
// the latest threaded receipt per thread id ("main" for the main
// timeline). 0 and nil when none.
type ReceiptPositions interface {
	ReceiptPositions(ctx context.Context, userID, roomID string) (unthreaded int64, threads map[string]int64, err error)
}

// Deps is what the push service needs.
type Deps struct {
	Global *config.Global
	Config *config.Push
	Store  *storage.Store
	Rooms  RoomReader
	// Ignored is nil when nobody ignores anybody.
	Ignored IgnoredUsers
	// Receipts is nil when nothing counts as read.
	Receipts ReceiptPositions
	// Notifier is nil when nobody needs telling of rule changes.
	Notifier AccountDataNotifier
	Log      *logrus.Entry
}

// Service is push: its handlers, its Processor and its Sender, which
// share the cache of compiled push rules.
type Service struct {
	rules    *Rules
	proc     *Processor
	handlers *Handlers
	sender   *Sender
}

// New builds the push service; it does no I/O until Start.
func New(d Deps) (*Service, error) {
	if d.Log == nil {
		d.Log = logrus.NewEntry(logrus.New())
	}
	receipts := d.Receipts
	if receipts == nil {
		receipts = noReceipts{}
	}
	sender, err := newSender(d.Config, d.Store, d.Rooms, receipts, d.Log)
	if err != nil {
		return nil, fmt.Errorf("build push sender: %w", err)
	}
	rules := newRules(d.Store, d.Notifier)
	s := &Service{rules: rules, sender: sender}
	s.proc = newProcessor(processorDeps{
		serverName: d.Global.ServerName, rules: rules, store: d.Store, rooms: d.Rooms,
		ignored: d.Ignored, wake: sender.Wake, log: d.Log,
	})
	s.handlers = &Handlers{rules: rules, store: d.Store, rooms: d.Rooms, receipts: receipts,
		cfg: d.Config, wake: sender.Wake}
	return s, nil
}

// Processor returns the service's Processor, for sync's consumer.
func (s *Service) Processor() *Processor { return s.proc }

// Handlers returns the HTTP handlers of /pushrules, /pushers and
// /notifications.
func (s *Service) Handlers() *Handlers { return s.handlers }

// Rules returns the service's rules, for sync's m.push_rules.
func (s *Service) Rules() *Rules { return s.rules }

// Start starts the Sender.
func (s *Service) Start(ctx context.Context) error {
	s.sender.start()
	return nil
}

// Stop stops the Sender and waits for it.
func (s *Service) Stop(ctx context.Context) error {
	s.sender.stop()
	return nil
}

type noReceipts struct{}

func (noReceipts) ReceiptPositions(context.Context, string, string) (int64, map[string]int64, error) {
	return 0, nil, nil
}
