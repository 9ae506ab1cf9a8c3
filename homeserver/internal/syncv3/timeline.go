package syncv3

import (
	"context"
	"fmt"
	"strconv"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
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
}

// timeline reads the room's events with rooms positions in (from, upTo],
// the newest first up to the filter's limit. Events before joinPos (the
// roomserver position of the user's join; 0 for none) and all events when
// checkAll is set go through history visibility.
func (b *builder) timeline(ctx context.Context, roomID string, from, upTo, joinPos int64, checkAll bool) (*roomTimeline, error) {
	tl := &roomTimeline{roomID: roomID, prevs: map[string]*events.Event{}}
	end, ok := b.h.Notifier.Latest(roomID)
	if !ok || end.SyncPos > upTo {
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
		first, ok, err := b.h.Store.RoomEventAt(ctx, roomID, from, true)
		if err != nil {
			return nil, err
		}
		if ok {
			startPos = first.StreamPos
		}
	}
	limit := b.req.filter.timelineLimit()
	filter := b.req.filter.Room.Timeline
	cursor := end.StreamPos + 1
	var newestFirst []events.Event
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
			if len(newestFirst) == limit {
				tl.limited = true
				break reads
			}
			cursor = r.StreamPos
			e, err := events.Parse(r)
			if err != nil {
				return nil, err
			}
			if !filter.Allows(e) || (b.ignored[e.Sender] && !e.IsState()) {
				continue
			}
			if checkAll || e.StreamPos < joinPos {
				ok, prev, err := events.Visible(ctx, b.h.Rooms, b.req.dev.UserID, e, !checkAll)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				if prev != nil {
					tl.prevs[e.EventID] = prev
				}
			}
			newestFirst = append(newestFirst, e)
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
	tl.prevBatch = token(cursor - 1)
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
	return tl, nil
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
	f, err := events.NewFormatter(ctx, b.h.Rooms, b.h.Store, b.now, b.req.dev, tl.events)
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
	f, err := events.NewFormatter(ctx, b.h.Rooms, b.h.Store, b.now, b.req.dev)
	if err != nil {
		return nil, err
	}
	return f.FormatAll(evs, nil), nil
}
