package syncv3

import (
	"context"
	"fmt"
	"strconv"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// maxTimelineReads bounds the roomserver pages read for one room's
// timeline when the filter or history visibility hide events.
const maxTimelineReads = 3

// roomTimeline is a room's timeline for one response, before formatting.
type roomTimeline struct {
	roomID string
	// events are in order, oldest first.
	events  []events.Event
	limited bool
	// prevBatch is a /messages token just before the first event.
	prevBatch string
	// end is the latest event of the room in range (the timeline's end
	// even when the filter hid it); empty when the room has none.
	end string
	// prevs are the state events the timeline's state events replaced.
	prevs map[string]*events.Event
	// hasMembers says a member event is in the timeline.
	hasMembers bool
	// newestFirst are the events kept while reading, newest first.
	newestFirst []events.Event
}

// timeline reads the room's events with rooms positions in (from, upTo],
// the newest first up to the filter's limit. Events before joinPos (the
// roomserver position of the user's join; 0 for none) and all events when
// checkAll is set go through history visibility.
func (b *builder) timeline(ctx context.Context, roomID string, from, upTo, joinPos int64, checkAll bool) (*roomTimeline, error) {
	tl := &roomTimeline{roomID: roomID, prevs: map[string]*events.Event{}}
	end, ok, known := b.h.Notifier.EventAtOrBefore(roomID, upTo)
	if !known {
		if err := b.written(ctx); err != nil {
			return nil, err
		}
		var err error
		if end, ok, err = b.h.Store.RoomEventAt(ctx, roomID, upTo, false); err != nil {
			return nil, err
		}
	}
	if !ok {
		return tl, nil
	}
	tl.end = end.EventID
	tl.prevBatch = token(end.StreamPos)
	if end.SyncPos <= from {
		return tl, nil
	}
	var startPos int64
	if from > 0 {
		first, ok, known := b.h.Notifier.FirstAfter(roomID, from)
		if !known {
			if err := b.written(ctx); err != nil {
				return nil, err
			}
			var err error
			if first, ok, err = b.h.Store.RoomEventAt(ctx, roomID, from, true); err != nil {
				return nil, err
			}
		}
		if ok {
			startPos = first.StreamPos
		}
	}
	limit := b.req.filter.timelineLimit()
	if startPos > 0 {
		// An incremental sync: most often a few events, read forward from
		// the range's start; more than limit means a gap.
		raw, ok := b.h.Notifier.RecentEvents(roomID, from, upTo, limit+1)
		if !ok {
			var err error
			if raw, err = b.h.Rooms.Timeline(ctx, roomID, startPos-1, rsapi.Forward, limit+1); err != nil {
				return nil, fmt.Errorf("read timeline of %s: %w", roomID, err)
			}
		}
		inRange := raw[:0:0]
		for _, r := range raw {
			if r.StreamPos <= end.StreamPos {
				inRange = append(inRange, r)
			}
		}
		if len(inRange) <= limit {
			for i := len(inRange) - 1; i >= 0; i-- {
				if err := b.keep(ctx, tl, inRange[i], joinPos, checkAll); err != nil {
					return nil, err
				}
			}
			return b.finish(tl, startPos-1), nil
		}
	}
	cursor := end.StreamPos + 1
	exhausted := false
reads:
	for read := 0; read < maxTimelineReads; read++ {
		raw, err := b.h.Rooms.Timeline(ctx, roomID, cursor, rsapi.Backward, limit+1)
		if err != nil {
			return nil, fmt.Errorf("read timeline of %s: %w", roomID, err)
		}
		for _, r := range raw {
			if r.StreamPos < startPos {
				exhausted = true
				break reads
			}
			if len(tl.newestFirst) == limit {
				tl.limited = true
				break reads
			}
			cursor = r.StreamPos
			if err := b.keep(ctx, tl, r, joinPos, checkAll); err != nil {
				return nil, err
			}
		}
		if len(raw) < limit+1 {
			exhausted = true
			break
		}
	}
	if !exhausted && !tl.limited {
		// Reads ran out before the range did: there is more before.
		tl.limited = true
	}
	return b.finish(tl, cursor-1), nil
}

// keep adds r to the timeline (read newest first) if the filter, the
// ignored users and history visibility let it through.
func (b *builder) keep(ctx context.Context, tl *roomTimeline, r rsapi.Event, joinPos int64, checkAll bool) error {
	e, err := events.Parse(r)
	if err != nil {
		return err
	}
	if !b.req.filter.Room.Timeline.Allows(e) || (b.ignored[e.Sender] && !e.IsState()) {
		return nil
	}
	if checkAll || e.StreamPos < joinPos {
		ok, prev, err := events.Visible(ctx, b.h.Rooms, b.req.dev.UserID, e, !checkAll)
		if err != nil || !ok {
			return err
		}
		if prev != nil {
			tl.prevs[e.EventID] = prev
		}
	}
	tl.newestFirst = append(tl.newestFirst, e)
	return nil
}

// finish puts the kept events in order; before is the roomserver position
// just before the range read, the prev_batch when nothing was kept.
func (b *builder) finish(tl *roomTimeline, before int64) *roomTimeline {
	tl.prevBatch = token(before)
	newestFirst := tl.newestFirst
	for i := len(newestFirst) - 1; i >= 0; i-- {
		e := newestFirst[i]
		tl.events = append(tl.events, e)
		if e.Type == "m.room.member" {
			tl.hasMembers = true
		}
	}
	if len(tl.events) > 0 {
		tl.prevBatch = token(tl.events[0].StreamPos - 1)
	}
	return tl
}

// token is the /messages token of the point just after roomserver
// position pos (see homeserver/internal/rooms).
func token(pos int64) string { return "s" + strconv.FormatInt(max(pos, 0), 10) }

// format turns a timeline into its client format, with prev_content on
// state events.
func (b *builder) format(ctx context.Context, tl *roomTimeline) (timeline, error) {
	out := timeline{Events: []events.Client{}, Limited: tl.limited, PrevBatch: tl.prevBatch}
	if len(tl.events) == 0 {
		return out, nil
	}
	for _, e := range tl.events {
		if !e.IsState() {
			continue
		}
		if _, ok := tl.prevs[e.EventID]; ok {
			continue
		}
		prev, err := b.h.Rooms.StateEventsBefore(ctx, e.EventID, []rsapi.StateKey{e.Key()})
		if err != nil {
			return timeline{}, fmt.Errorf("read state before %s: %w", e.EventID, err)
		}
		if len(prev) == 1 {
			pe, err := events.Parse(prev[0])
			if err != nil {
				return timeline{}, err
			}
			tl.prevs[e.EventID] = &pe
		}
	}
	f, err := events.NewFormatter(ctx, recentRelations{b.h, tl.roomID}, streams.TxnIDs{Notifier: b.h.Notifier, Store: b.h.Store}, b.now, b.req.dev, tl.events)
	if err != nil {
		return timeline{}, err
	}
	out.Events = f.FormatAll(tl.events, tl.prevs)
	return out, nil
}

// formatState turns state events into their client format.
func (b *builder) formatState(ctx context.Context, evs []events.Event) ([]events.Client, error) {
	if len(evs) == 0 {
		return []events.Client{}, nil
	}
	f, err := events.NewFormatter(ctx, b.h.Rooms, streams.TxnIDs{Notifier: b.h.Notifier, Store: b.h.Store}, b.now, b.req.dev)
	if err != nil {
		return nil, err
	}
	return f.FormatAll(evs, nil), nil
}

// recentRelations looks up aggregations only for the events that may have
// some: a recent event nothing related to has none (the feeder sees every
// relation), and most of a sync's events are recent.
type recentRelations struct {
	h      *Handlers
	roomID string
}

// Aggregations implements events.Relations.
func (r recentRelations) Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]rsapi.Aggregation, error) {
	none := r.h.Notifier.Unrelated(r.roomID, eventIDs)
	ask := eventIDs[:0:0]
	for _, id := range eventIDs {
		if !none[id] {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return nil, nil
	}
	return r.h.Rooms.Aggregations(ctx, userID, ask)
}
