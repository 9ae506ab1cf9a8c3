package state

import (
	"context"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Advance returns a room's forward extremities once ev is accepted: ev,
// in place of those of ext that it names as prev_events. ext is not
// changed.
func Advance(ext []*Event, ev *Event) []*Event {
	prevs := ev.PDU.PrevEventIDs()
	out := make([]*Event, 0, len(ext)+1)
	for _, e := range ext {
		if !containsString(prevs, e.EventID) {
			out = append(out, e)
		}
	}
	return append(out, ev)
}

// Extremities replays a room's stored extremity log: the checkpointed
// set, advanced by each event accepted after it.
func (c *Events) Extremities(ctx context.Context, log storage.ExtremityLog) ([]*Event, error) {
	ext, err := c.ByNID(ctx, log.Checkpoint)
	if err != nil {
		return nil, err
	}
	later, err := c.ByNID(ctx, log.Later)
	if err != nil {
		return nil, err
	}
	for _, ev := range later {
		ext = Advance(ext, ev)
	}
	return ext, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
