// Package search keeps the server-side search index: a durable consumer
// of the roomserver's output that writes the searchable text of each
// accepted event (m.room.message bodies, room names and topics) to
// search_events, and removes redacted events. Encrypted events
// (m.room.encrypted) carry no readable text and are never indexed. The
// queries are homeserver/storage's (search.go) and POST /search is served
// by homeserver/internal/rooms (search.go), which applies access rules.
package search

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// durable names the indexer's consumer of the roomserver's output.
const durable = "homeserver_search"

// batch bounds the events indexed in one transaction.
const batch = 256

// linger is how long a batch of the index waits for more events: one
// commit per quarter second under a steady flow of messages rather than
// one per message, which competed with sends for the database. A message
// is searchable this much later at worst.
const linger = 250 * time.Millisecond

// maxValueBytes bounds the text indexed per event (an event is at most
// 64 KiB anyway).
const maxValueBytes = 65536

// Store is the index.
type Store interface {
	IndexSearch(ctx context.Context, docs []storage.SearchDoc, redacted []string) error
}

// Indexer feeds the index from the bus.
type Indexer struct {
	Bus   *bus.Bus
	Store Store
	Log   *logrus.Entry
	stop  func()
}

// Start attaches the durable consumer.
func (x *Indexer) Start(ctx context.Context) error {
	stop, err := x.Bus.ConsumeBatch(context.WithoutCancel(ctx), bus.StreamRoomserverOutput, durable, "", x.handle, batch,
		bus.WithBatchLinger(linger))
	if err != nil {
		return fmt.Errorf("consume roomserver output for search: %w", err)
	}
	x.stop = stop
	return nil
}

// Stop detaches it once the batch in hand is done.
func (x *Indexer) Stop() {
	if x.stop != nil {
		x.stop()
	}
}

// handle indexes a batch in one transaction (idempotent: a redelivered
// event is already there).
func (x *Indexer) handle(ctx context.Context, msgs []bus.Message) error {
	var docs []storage.SearchDoc
	var redacted []string
	for _, msg := range msgs {
		var out rsapi.OutputEvent
		if err := msg.Decode(&out); err != nil {
			x.Log.WithError(err).Error("search: dropping undecodable roomserver output")
			continue
		}
		if out.SoftFailed {
			continue
		}
		e, err := events.Parse(out.Event)
		if err != nil {
			x.Log.WithError(err).WithField("event_id", out.Event.EventID).Warn("search: unparsable event")
			continue
		}
		if e.Type == "m.room.redaction" && e.Redacts != "" {
			redacted = append(redacted, e.Redacts)
			continue
		}
		if d, ok := Doc(e); ok {
			docs = append(docs, d)
		}
	}
	return x.Store.IndexSearch(ctx, docs, redacted)
}

// Doc returns the searchable text of e, if it has any: the body of a
// message, the name or topic of a room (current or not: an old name is
// history too).
func Doc(e events.Event) (storage.SearchDoc, bool) {
	var field, key string
	switch {
	case e.Type == "m.room.message" && e.StateKey == nil:
		field, key = "content.body", "body"
	case e.Type == "m.room.name" && e.StateKey != nil && *e.StateKey == "":
		field, key = "content.name", "name"
	case e.Type == "m.room.topic" && e.StateKey != nil && *e.StateKey == "":
		field, key = "content.topic", "topic"
	default:
		return storage.SearchDoc{}, false
	}
	var content map[string]json.RawMessage
	if json.Unmarshal(e.Content, &content) != nil {
		return storage.SearchDoc{}, false
	}
	var value string
	if json.Unmarshal(content[key], &value) != nil || value == "" {
		return storage.SearchDoc{}, false
	}
	if len(value) > maxValueBytes {
		value = value[:maxValueBytes]
	}
	return storage.SearchDoc{StreamPos: e.StreamPos, EventID: e.EventID, RoomID: e.RoomID, Sender: e.Sender,
		Type: e.Type, Field: field, Value: value}, true
}
