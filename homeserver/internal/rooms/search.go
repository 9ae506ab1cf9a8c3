package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// POST /search: full-text search of room events in the rooms the user is
// or was in, over the index homeserver/internal/search keeps. The index
// knows nothing of access: every hit goes through the room's history
// visibility for the user (a user who left sees only what came before),
// and the next page picks up after the last hit looked at, whether it was
// shown or not.

// Search limits.
const (
	searchDefaultLimit = 10
	searchMaxLimit     = 100
	// searchCountCap bounds count: past it, count says searchCountCap.
	searchCountCap = 1000
	// searchRounds bounds the index reads of one request when hits are
	// hidden: past it, the page is short and next_batch goes on.
	searchRounds = 5
	// searchMaxContext bounds event_context's before and after limits.
	searchMaxContext = 50
)

// searchKeys are the content keys that can be searched.
var searchKeys = map[string]bool{"content.body": true, "content.name": true, "content.topic": true}

type searchRequest struct {
	SearchCategories struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string         `json:"search_term"`
	Keys         []string        `json:"keys"`
	Filter       json.RawMessage `json:"filter"`
	OrderBy      string          `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

type searchResult struct {
	Rank    float64        `json:"rank"`
	Result  events.Client  `json:"result"`
	Context *searchContext `json:"context,omitempty"`
}

type searchContext struct {
	Start        string                     `json:"start"`
	End          string                     `json:"end"`
	EventsBefore []events.Client            `json:"events_before"`
	EventsAfter  []events.Client            `json:"events_after"`
	ProfileInfo  map[string]json.RawMessage `json:"profile_info,omitempty"`
}

type searchGroup struct {
	NextBatch string   `json:"next_batch,omitempty"`
	Order     int      `json:"order"`
	Results   []string `json:"results"`
}

type roomEventsResults struct {
	Count      int                               `json:"count"`
	Highlights []string                          `json:"highlights"`
	NextBatch  string                            `json:"next_batch,omitempty"`
	Results    []searchResult                    `json:"results"`
	State      map[string][]events.Client        `json:"state,omitempty"`
	Groups     map[string]map[string]searchGroup `json:"groups,omitempty"`
}

// Search is POST /search.
func (h *Handlers) Search(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	var req searchRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	crit := req.SearchCategories.RoomEvents
	if crit == nil {
		return map[string]any{"search_categories": map[string]any{}}, nil
	}
	q, filter, err := h.searchQuery(ctx, dev.UserID, crit, r.URL.Query().Get("next_batch"))
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	out := roomEventsResults{Highlights: highlights(*crit.SearchTerm), Results: []searchResult{}}
	viewers := map[string]*viewer{}
	var found []events.Event
	var ranks []float64
	exhausted := false
	for round := 0; round < searchRounds && len(found) < limit && !exhausted; round++ {
		q.Limit = max(2*(limit-len(found)), 10)
		hits, err := h.store.SearchEvents(ctx, q)
		if err != nil {
			return nil, err
		}
		exhausted = len(hits) < q.Limit
		for i, hit := range hits {
			q.Offset++
			q.Before = hit.StreamPos
			e, ok, err := h.searchHit(ctx, viewers, dev.UserID, hit, filter)
			if err != nil {
				return nil, err
			}
			if ok {
				found = append(found, e)
				ranks = append(ranks, hit.Rank)
			}
			if len(found) == limit {
				exhausted = exhausted && i == len(hits)-1
				break
			}
		}
	}
	if !exhausted {
		if q.Order == storage.SearchRank {
			out.NextBatch = "rank_" + strconv.Itoa(q.Offset)
		} else {
			out.NextBatch = "recent_" + strconv.FormatInt(q.Before, 10)
		}
	}
	q.Before, q.Offset = 0, 0
	if out.Count, err = h.store.CountSearchEvents(ctx, q, searchCountCap); err != nil {
		return nil, err
	}
	f, err := h.newFormatter(ctx, dev, found)
	if err != nil {
		return nil, err
	}
	for i, e := range found {
		res := searchResult{Rank: ranks[i], Result: f.Format(e, nil)}
		if crit.EventContext != nil {
			before, after := contextLimit(crit.EventContext.BeforeLimit), contextLimit(crit.EventContext.AfterLimit)
			if res.Context, err = h.searchContext(ctx, viewers[e.RoomID], f, e, before, after, crit.EventContext.IncludeProfile); err != nil {
				return nil, err
			}
		}
		out.Results = append(out.Results, res)
	}
	if crit.IncludeState {
		if out.State, err = h.searchState(ctx, f, viewers, found); err != nil {
			return nil, err
		}
	}
	out.Groups = searchGroups(crit, found, out.NextBatch)
	return map[string]any{"search_categories": map[string]any{"room_events": out}}, nil
}

// searchQuery checks the criteria and turns them into an index query;
// the returned filter applies what the index cannot (type wildcards,
// contains_url).
func (h *Handlers) searchQuery(ctx context.Context, userID string, crit *roomEventsCriteria, nextBatch string) (storage.SearchQuery, events.Filter, error) {
	var q storage.SearchQuery
	if crit.SearchTerm == nil {
		return q, events.Filter{}, httputil.MissingParam("search_term is required")
	}
	q.Term = *crit.SearchTerm
	for _, k := range crit.Keys {
		if !searchKeys[k] {
			return q, events.Filter{}, httputil.InvalidParam("unknown search key %q (content.body, content.name, content.topic)", k)
		}
	}
	q.Fields = crit.Keys
	switch crit.OrderBy {
	case "", storage.SearchRank:
		q.Order = storage.SearchRank
	case storage.SearchRecent:
		q.Order = storage.SearchRecent
	default:
		return q, events.Filter{}, httputil.InvalidParam("order_by must be rank or recent")
	}
	var filter events.Filter
	if len(crit.Filter) > 0 && string(crit.Filter) != "null" {
		var err error
		if filter, err = events.ParseFilter(string(crit.Filter)); err != nil {
			return q, events.Filter{}, err
		}
	}
	q.Limit = searchDefaultLimit
	if filter.Limit != nil {
		q.Limit = min(max(*filter.Limit, 1), searchMaxLimit)
	}
	if filter.Senders != nil {
		if len(*filter.Senders) == 0 {
			return q, filter, nil // nothing can pass: q.Rooms stays empty
		}
		q.Senders = *filter.Senders
	}
	q.NotSenders = filter.NotSenders
	if nextBatch != "" {
		kind, n, _ := strings.Cut(nextBatch, "_")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil || v < 0 || kind != q.Order {
			return q, filter, httputil.InvalidParam("next_batch is not a token of this search")
		}
		q.Before, q.Offset = v, int(v)
		if kind == storage.SearchRecent {
			q.Offset = 0
		} else {
			q.Before = 0
		}
	}
	// The rooms the user is or was in (a departed user keeps the history
	// from before they left, unless they forgot the room: their viewer
	// then sees nothing).
	for _, m := range []string{membershipJoin, membershipLeave, membershipBan} {
		ids, err := h.rooms.RoomsOf(ctx, userID, m)
		if err != nil {
			return q, filter, fmt.Errorf("read rooms: %w", err)
		}
		for _, id := range ids {
			if filter.AllowsRoom(id) {
				q.Rooms = append(q.Rooms, id)
			}
		}
	}
	return q, filter, nil
}

// searchHit reads a hit and decides whether the user may see it.
func (h *Handlers) searchHit(ctx context.Context, viewers map[string]*viewer, userID string, hit storage.SearchHit, filter events.Filter) (events.Event, bool, error) {
	v, ok := viewers[hit.RoomID]
	if !ok {
		var err error
		if v, err = h.viewerOf(ctx, hit.RoomID, userID); err != nil {
			if _, internal := httputil.AsError(err); internal {
				return events.Event{}, false, err
			}
			v = &viewer{userID: userID, roomID: hit.RoomID}
		}
		viewers[hit.RoomID] = v
	}
	if !v.inRoom() {
		return events.Event{}, false, nil
	}
	e, _, err := h.visibleEvent(ctx, v, hit.EventID)
	if err != nil {
		if _, internal := httputil.AsError(err); internal {
			return events.Event{}, false, err
		}
		return events.Event{}, false, nil
	}
	if e.RedactedBecause != nil || !filter.Allows(e) {
		return events.Event{}, false, nil
	}
	return e, true, nil
}

// contextLimit reads an event_context limit: 5 by default, as Synapse.
func contextLimit(n *int) int {
	if n == nil {
		return 5
	}
	return min(max(*n, 0), searchMaxContext)
}

// searchContext is a result's event_context: the visible events around
// it, and the senders' profiles in the room when asked.
func (h *Handlers) searchContext(ctx context.Context, v *viewer, f *events.Formatter, e events.Event, before, after int, profiles bool) (*searchContext, error) {
	b, err := h.paginate(ctx, v, events.Filter{}, e.StreamPos-1, noBound, api.Backward, before)
	if err != nil {
		return nil, err
	}
	a, err := h.paginate(ctx, v, events.Filter{}, e.StreamPos, noBound, api.Forward, after)
	if err != nil {
		return nil, err
	}
	c := &searchContext{Start: formatToken(b.next), End: formatToken(a.next),
		EventsBefore: f.FormatAll(b.events, b.prevs), EventsAfter: f.FormatAll(a.events, a.prevs)}
	if !profiles {
		return c, nil
	}
	c.ProfileInfo = map[string]json.RawMessage{}
	for _, list := range [][]events.Event{{e}, b.events, a.events} {
		for _, x := range list {
			if _, done := c.ProfileInfo[x.Sender]; done {
				continue
			}
			c.ProfileInfo[x.Sender] = json.RawMessage("{}")
			member, err := h.rooms.StateEventsBefore(ctx, x.EventID, []api.StateKey{{Type: typeMember, StateKey: x.Sender}})
			if err != nil {
				return nil, fmt.Errorf("read member event: %w", err)
			}
			if len(member) == 1 {
				var p struct {
					DisplayName *string `json:"displayname,omitempty"`
					AvatarURL   *string `json:"avatar_url,omitempty"`
				}
				_ = json.Unmarshal(contentOf(member[0]), &p)
				raw, err := json.Marshal(p)
				if err != nil {
					return nil, fmt.Errorf("encode profile: %w", err)
				}
				c.ProfileInfo[x.Sender] = raw
			}
		}
	}
	return c, nil
}

// searchState is include_state: the current state of each room with a
// result that the user is joined to (a departed user's view of a room is
// its history, not its state now).
func (h *Handlers) searchState(ctx context.Context, f *events.Formatter, viewers map[string]*viewer, found []events.Event) (map[string][]events.Client, error) {
	state := map[string][]events.Client{}
	for _, e := range found {
		if _, done := state[e.RoomID]; done || viewers[e.RoomID].membership != membershipJoin {
			continue
		}
		raw, err := h.rooms.CurrentState(ctx, e.RoomID)
		if err != nil {
			return nil, fmt.Errorf("read room state: %w", err)
		}
		evs, err := events.ParseAll(raw)
		if err != nil {
			return nil, err
		}
		state[e.RoomID] = f.FormatAll(evs, nil)
	}
	return state, nil
}

// searchGroups is groupings: the results' ids by room or by sender, in
// order of first appearance.
func searchGroups(crit *roomEventsCriteria, found []events.Event, nextBatch string) map[string]map[string]searchGroup {
	var groups map[string]map[string]searchGroup
	for _, g := range crit.Groupings.GroupBy {
		if g.Key != "room_id" && g.Key != "sender" {
			continue
		}
		if groups == nil {
			groups = map[string]map[string]searchGroup{}
		}
		byKey := map[string]searchGroup{}
		for _, e := range found {
			k := e.RoomID
			if g.Key == "sender" {
				k = e.Sender
			}
			grp, ok := byKey[k]
			if !ok {
				grp = searchGroup{Order: len(byKey) + 1, NextBatch: nextBatch}
			}
			grp.Results = append(grp.Results, e.EventID)
			byKey[k] = grp
		}
		groups[g.Key] = byKey
	}
	return groups
}

// highlights are the words to highlight in results: the search's words.
func highlights(term string) []string {
	out := []string{}
	for _, w := range strings.FieldsFunc(term, func(r rune) bool { return !isWordRune(r) }) {
		out = append(out, strings.ToLower(w))
	}
	return out
}

func isWordRune(r rune) bool {
	return r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || r > 127
}
