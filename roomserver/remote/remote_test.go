package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// fake is a Roomserver that records each call's arguments and answers
// with fixed values, or with err when it is set.
type fake struct {
	// mu guards every field.
	mu sync.Mutex
	// err is every method's error when not nil.
	err error
	// args are the last call's arguments, ctx left out.
	args []any
	// timeLeft is the time the last call's ctx had before its deadline.
	timeLeft time.Duration
	// state, when set, is CurrentState's answer.
	state []api.Event
}

func (f *fake) record(ctx context.Context, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.args = args
	f.timeLeft = 0
	if d, ok := ctx.Deadline(); ok {
		f.timeLeft = time.Until(d)
	}
	return f.err
}

func (f *fake) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fake) last() ([]any, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.args, f.timeLeft
}

// Sample values, with every field set.
var (
	sampleEvent = api.Event{
		RoomVersion: "11", EventID: "$ev", RoomID: "!room:test.local",
		JSON: json.RawMessage(`{"type":"m.room.message","content":{"body":"hi"}}`), StreamPos: 42,
		RedactedBy: "$red", RedactedBecause: json.RawMessage(`{"type":"m.room.redaction"}`),
	}
	otherEvent = api.Event{RoomVersion: "12", EventID: "$other", RoomID: "!room:test.local", JSON: json.RawMessage(`{}`), StreamPos: 43}
	stateKey   = "@alice:test.local"
)

func (f *fake) CreateRoom(ctx context.Context, req api.CreateRoomRequest) (string, []string, error) {
	return "!new:test.local", []string{"$create", "$join"}, f.record(ctx, req)
}

func (f *fake) Send(ctx context.Context, roomID string, ev api.ProtoEvent) (api.Event, error) {
	return sampleEvent, f.record(ctx, roomID, ev)
}

func (f *fake) InputEvents(ctx context.Context, roomID string, events []json.RawMessage) ([]api.InputResult, error) {
	res := make([]api.InputResult, len(events))
	for i, e := range events {
		res[i] = api.InputResult{EventID: string(e), Rejected: "because", SoftFailed: true}
	}
	return res, f.record(ctx, roomID, events)
}

func (f *fake) RoomVersion(ctx context.Context, roomID string) (string, error) {
	return "12", f.record(ctx, roomID)
}

func (f *fake) CurrentState(ctx context.Context, roomID string) ([]api.Event, error) {
	err := f.record(ctx, roomID)
	if f.state != nil {
		return f.state, err
	}
	return []api.Event{sampleEvent, otherEvent}, err
}

func (f *fake) CurrentStateEvent(ctx context.Context, roomID string, key api.StateKey) (api.Event, error) {
	return sampleEvent, f.record(ctx, roomID, key)
}

func (f *fake) StateBefore(ctx context.Context, eventID string) ([]api.Event, error) {
	return []api.Event{}, f.record(ctx, eventID)
}

func (f *fake) StateEventsBefore(ctx context.Context, eventID string, keys []api.StateKey) ([]api.Event, error) {
	return nil, f.record(ctx, eventID, keys)
}

func (f *fake) Event(ctx context.Context, eventID string) (api.Event, error) {
	return otherEvent, f.record(ctx, eventID)
}

func (f *fake) Membership(ctx context.Context, roomID, userID string) (string, int64, error) {
	return "join", 7, f.record(ctx, roomID, userID)
}

func (f *fake) RoomsOf(ctx context.Context, userID, membership string) ([]string, error) {
	return []string{"!a:test.local", "!b:test.local"}, f.record(ctx, userID, membership)
}

func (f *fake) Timeline(ctx context.Context, roomID string, from int64, dir api.Direction, limit int) ([]api.Event, error) {
	return []api.Event{otherEvent}, f.record(ctx, roomID, from, dir, limit)
}

func (f *fake) LatestPos(ctx context.Context) (int64, error) {
	return 99, f.record(ctx)
}

func (f *fake) StrippedState(ctx context.Context, roomID string) ([]json.RawMessage, error) {
	return []json.RawMessage{json.RawMessage(`{"type":"m.room.create"}`)}, f.record(ctx, roomID)
}

func (f *fake) EventNearTimestamp(ctx context.Context, roomID string, ts int64, dir api.Direction) (api.Event, error) {
	return sampleEvent, f.record(ctx, roomID, ts, dir)
}

func (f *fake) RelatedEvents(ctx context.Context, req api.RelationsRequest) ([]api.Event, error) {
	return []api.Event{sampleEvent}, f.record(ctx, req)
}

func (f *fake) Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]api.Aggregation, error) {
	edit := otherEvent
	return map[string]api.Aggregation{
		"$root": {Thread: &api.ThreadSummary{Latest: sampleEvent, Count: 3, CurrentUserParticipated: true}, Replace: &edit, References: []string{"$ref"}},
		"$ref":  {References: []string{"$a", "$b"}},
	}, f.record(ctx, userID, eventIDs)
}

func (f *fake) Threads(ctx context.Context, roomID, participatedBy string, from int64, limit int) ([]api.Event, []int64, error) {
	return []api.Event{sampleEvent, otherEvent}, []int64{10, 5}, f.record(ctx, roomID, participatedBy, from, limit)
}

func (f *fake) SetAlias(ctx context.Context, alias, roomID, creator string) error {
	return f.record(ctx, alias, roomID, creator)
}

func (f *fake) ResolveAlias(ctx context.Context, alias string) (api.RoomAlias, error) {
	return api.RoomAlias{Alias: alias, RoomID: "!room:test.local", Creator: "@alice:test.local"}, f.record(ctx, alias)
}

func (f *fake) DeleteAlias(ctx context.Context, a api.RoomAlias) error {
	return f.record(ctx, a)
}

func (f *fake) AliasesOf(ctx context.Context, roomID string) ([]string, error) {
	return nil, f.record(ctx, roomID)
}

func (f *fake) SetVisibility(ctx context.Context, roomID string, public bool) error {
	return f.record(ctx, roomID, public)
}

func (f *fake) Visibility(ctx context.Context, roomID string) (bool, error) {
	return true, f.record(ctx, roomID)
}

func (f *fake) PublicRooms(ctx context.Context, q api.PublicRoomsQuery) (api.PublicRoomsPage, error) {
	return api.PublicRoomsPage{
		Chunk: []api.PublicRoom{{
			RoomID: "!room:test.local", Name: "Room", Topic: "Topic", CanonicalAlias: "#room:test.local", AvatarURL: "mxc://test.local/a",
			NumJoinedMembers: 3, WorldReadable: true, GuestCanJoin: true, JoinRule: "public", RoomType: "m.space",
		}},
		NextBatch: "n", PrevBatch: "p", Total: 9,
	}, f.record(ctx, q)
}

// serveFake serves a fake on an embedded bus and returns it with a client.
func serveFake(t *testing.T) (*fake, *Client) {
	t.Helper()
	b := bustest.Embedded(t)
	f := &fake{}
	stop, err := Serve(b, f)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(stop)
	return f, NewClient(b)
}

// method is one call of the api, made the same way on the fake itself
// and on the client.
type method struct {
	name  string
	write bool // a write: WriteTimeout applies
	call  func(ctx context.Context, rs Roomserver) ([]any, error)
}

func methods() []method {
	content := json.RawMessage(`{"body":"hello"}`)
	proto := api.ProtoEvent{Type: "m.room.member", StateKey: &stateKey, Sender: "@alice:test.local", Content: content, Redacts: "$x"}
	return []method{
		{"CreateRoom", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			id, ids, err := rs.CreateRoom(ctx, api.CreateRoomRequest{RoomVersion: "12", Creator: "@alice:test.local",
				CreateContent: json.RawMessage(`{"type":"m.space"}`), Events: []api.ProtoEvent{proto, {Type: "m.room.message", Sender: "@a:b"}}})
			return []any{id, ids}, err
		}},
		{"CreateRoom without content or events", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			id, ids, err := rs.CreateRoom(ctx, api.CreateRoomRequest{RoomVersion: "12", Creator: "@alice:test.local"})
			return []any{id, ids}, err
		}},
		{"Send", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			ev, err := rs.Send(ctx, "!room:test.local", proto)
			return []any{ev}, err
		}},
		{"InputEvents", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			res, err := rs.InputEvents(ctx, "!room:test.local", []json.RawMessage{json.RawMessage(`"one"`), json.RawMessage(`"two"`)})
			return []any{res}, err
		}},
		{"RoomVersion", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			v, err := rs.RoomVersion(ctx, "!room:test.local")
			return []any{v}, err
		}},
		{"CurrentState", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.CurrentState(ctx, "!room:test.local")
			return []any{evs}, err
		}},
		{"CurrentStateEvent", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			ev, err := rs.CurrentStateEvent(ctx, "!room:test.local", api.StateKey{Type: "m.room.member", StateKey: stateKey})
			return []any{ev}, err
		}},
		{"StateBefore", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.StateBefore(ctx, "$ev")
			return []any{evs}, err
		}},
		{"StateEventsBefore all", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.StateEventsBefore(ctx, "$ev", nil)
			return []any{evs}, err
		}},
		{"StateEventsBefore none", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.StateEventsBefore(ctx, "$ev", []api.StateKey{})
			return []any{evs}, err
		}},
		{"StateEventsBefore some", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.StateEventsBefore(ctx, "$ev", []api.StateKey{{Type: "m.room.name"}, {Type: "m.room.member", StateKey: stateKey}})
			return []any{evs}, err
		}},
		{"Event", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			ev, err := rs.Event(ctx, "$other")
			return []any{ev}, err
		}},
		{"Membership", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			m, pos, err := rs.Membership(ctx, "!room:test.local", "@alice:test.local")
			return []any{m, pos}, err
		}},
		{"RoomsOf", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			ids, err := rs.RoomsOf(ctx, "@alice:test.local", "invite")
			return []any{ids}, err
		}},
		{"Timeline", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.Timeline(ctx, "!room:test.local", 12, api.Forward, 30)
			return []any{evs}, err
		}},
		{"LatestPos", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			pos, err := rs.LatestPos(ctx)
			return []any{pos}, err
		}},
		{"StrippedState", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.StrippedState(ctx, "!room:test.local")
			return []any{evs}, err
		}},
		{"EventNearTimestamp", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			ev, err := rs.EventNearTimestamp(ctx, "!room:test.local", 1700000000000, api.Backward)
			return []any{ev}, err
		}},
		{"RelatedEvents", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			evs, err := rs.RelatedEvents(ctx, api.RelationsRequest{RoomID: "!room:test.local", EventID: "$root",
				RelType: api.RelThread, EventType: "m.room.message", From: 8, Dir: api.Forward, Limit: 5})
			return []any{evs}, err
		}},
		{"Aggregations", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			aggs, err := rs.Aggregations(ctx, "@alice:test.local", []string{"$root", "$ref"})
			return []any{aggs}, err
		}},
		{"Threads", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			roots, pos, err := rs.Threads(ctx, "!room:test.local", "@alice:test.local", 20, 2)
			return []any{roots, pos}, err
		}},
		{"SetAlias", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			return nil, rs.SetAlias(ctx, "#a:test.local", "!room:test.local", "@alice:test.local")
		}},
		{"ResolveAlias", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			a, err := rs.ResolveAlias(ctx, "#a:test.local")
			return []any{a}, err
		}},
		{"DeleteAlias", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			return nil, rs.DeleteAlias(ctx, api.RoomAlias{Alias: "#a:test.local", RoomID: "!room:test.local", Creator: "@alice:test.local"})
		}},
		{"AliasesOf", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			aliases, err := rs.AliasesOf(ctx, "!room:test.local")
			return []any{aliases}, err
		}},
		{"SetVisibility", true, func(ctx context.Context, rs Roomserver) ([]any, error) {
			return nil, rs.SetVisibility(ctx, "!room:test.local", true)
		}},
		{"Visibility", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			public, err := rs.Visibility(ctx, "!room:test.local")
			return []any{public}, err
		}},
		{"PublicRooms", false, func(ctx context.Context, rs Roomserver) ([]any, error) {
			page, err := rs.PublicRooms(ctx, api.PublicRoomsQuery{SearchTerm: "room", RoomTypes: []string{"", "m.space"}, Since: "n", Limit: 10})
			return []any{page}, err
		}},
	}
}

// TestSameAnswers makes every call on the fake directly and through the
// bus: the fake must receive the same arguments and the caller get the
// same results (nil and empty told apart), within the same deadlines.
func TestSameAnswers(t *testing.T) {
	f, client := serveFake(t)
	ctx := context.Background()
	for _, m := range methods() {
		t.Run(m.name, func(t *testing.T) {
			want, err := m.call(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			wantArgs, _ := f.last()
			got, err := m.call(ctx, client)
			if err != nil {
				t.Fatalf("over the bus: %v", err)
			}
			gotArgs, timeLeft := f.last()
			if !reflect.DeepEqual(gotArgs, wantArgs) {
				t.Errorf("arguments over the bus:\n%#v\nwant\n%#v", gotArgs, wantArgs)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("results over the bus:\n%#v\nwant\n%#v", got, want)
			}
			limit := bus.DefaultCallTimeout
			if m.write {
				limit = WriteTimeout
			}
			if timeLeft > limit || timeLeft < limit-5*time.Second {
				t.Errorf("the roomserver had %s, want about %s", timeLeft, limit)
			}

			// A deadline of the caller's wins, shorter or longer.
			for _, d := range []time.Duration{2 * time.Second, time.Minute} {
				dctx, cancel := context.WithTimeout(ctx, d)
				_, err := m.call(dctx, client)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if _, timeLeft := f.last(); timeLeft > d || timeLeft < d-5*time.Second {
					t.Errorf("with a deadline %s away, the roomserver had %s", d, timeLeft)
				}
			}
		})
	}
}

// errorCases are the errors the roomserver may return, and what the
// caller must find in them.
func errorCases() []struct {
	name    string
	err     error
	is      error                   // errors.Is must hold
	reason  string                  // errors.As must find a *api.NotAllowedError with it
	subject bool                    // the message names the subject (not the roomserver's own error)
	refused *api.PolicyRefusedError // errors.As must find one equal to it
} {
	type errorCase = struct {
		name    string
		err     error
		is      error
		reason  string
		subject bool
		refused *api.PolicyRefusedError
	}
	var cases []errorCase
	for code, sentinel := range sentinelCodes() {
		cases = append(cases,
			errorCase{name: code, err: sentinel, is: sentinel},
			errorCase{name: code + " wrapped", err: fmt.Errorf("room !x:test.local: %w", sentinel), is: sentinel},
			errorCase{name: code + " with a reason", err: fmt.Errorf("%w: content is not an object", sentinel), is: sentinel},
		)
	}
	return append(cases,
		errorCase{name: "not allowed", err: &api.NotAllowedError{Reason: "sender is not in the room"}, reason: "sender is not in the room"},
		errorCase{name: "not allowed wrapped", err: fmt.Errorf("send: %w", &api.NotAllowedError{Reason: "power level too low"}), reason: "power level too low"},
		errorCase{name: "policy refused", err: &api.PolicyRefusedError{ErrCode: "M_FORBIDDEN", Message: "spam"}, refused: &api.PolicyRefusedError{ErrCode: "M_FORBIDDEN", Message: "spam"}},
		errorCase{name: "policy refused wrapped", err: fmt.Errorf("send: %w", &api.PolicyRefusedError{ErrCode: "M_BAD_JSON", Message: "no"}), refused: &api.PolicyRefusedError{ErrCode: "M_BAD_JSON", Message: "no"}},
		errorCase{name: "undeclared", err: errors.New("database on fire"), subject: true},
		errorCase{name: "deadline", err: fmt.Errorf("load state: %w", context.DeadlineExceeded), is: context.DeadlineExceeded, subject: true},
	)
}

// TestErrors checks that every error of the roomserver's crosses the bus
// as itself, on every method: errors.Is and errors.As find what they find
// in one process, and the message is the roomserver's.
func TestErrors(t *testing.T) {
	f, client := serveFake(t)
	ctx := context.Background()
	sentinels := sentinelCodes()
	for _, m := range methods() {
		for _, tc := range errorCases() {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				f.set(tc.err)
				defer f.set(nil)
				_, err := m.call(ctx, client)
				if err == nil {
					t.Fatal("no error")
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("errors.Is(%v, %v) is false", err, tc.is)
				}
				for _, s := range sentinels {
					if s != tc.is && errors.Is(err, s) {
						t.Errorf("%v also matches %v", err, s)
					}
				}
				var na *api.NotAllowedError
				if errors.As(err, &na) != (tc.reason != "") || na != nil && na.Reason != tc.reason {
					t.Errorf("errors.As(%v, *NotAllowedError) = %+v, want reason %q", err, na, tc.reason)
				}
				var pr *api.PolicyRefusedError
				if errors.As(err, &pr) != (tc.refused != nil) || pr != nil && *pr != *tc.refused {
					t.Errorf("errors.As(%v, *PolicyRefusedError) = %+v, want %+v", err, pr, tc.refused)
				}
				if tc.subject {
					if !strings.Contains(err.Error(), "roomserver.") || !strings.HasSuffix(err.Error(), tc.err.Error()) {
						t.Errorf("message %q, want the subject and %q", err, tc.err)
					}
				} else if err.Error() != tc.err.Error() {
					t.Errorf("message %q, want %q", err, tc.err)
				}
			})
		}
	}
}

// TestInputEventsInParts checks that many events cross in several
// requests, in order, and that the results of the events accepted before
// an error come back with it, as in one process.
func TestInputEventsInParts(t *testing.T) {
	f, client := serveFake(t)
	ctx := context.Background()
	big := json.RawMessage(`"` + strings.Repeat("x", 60_000) + `"`)
	events := make([]json.RawMessage, 20) // 1.2 MB: more than a NATS message
	for i := range events {
		events[i] = big
	}
	res, err := client.InputEvents(ctx, "!room:test.local", events)
	if err != nil || len(res) != len(events) {
		t.Fatalf("got %d results, %v; want %d", len(res), err, len(events))
	}
	args, _ := f.last()
	if last := args[1].([]json.RawMessage); len(last) == len(events) || len(last) == 0 {
		t.Errorf("the last request had %d events: not sent in parts", len(last))
	}

	f.set(fmt.Errorf("event 3: %w", api.ErrInvalidEvent))
	defer f.set(nil)
	res, err = client.InputEvents(ctx, "!room:test.local", []json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`"b"`)})
	if !errors.Is(err, api.ErrInvalidEvent) || len(res) != 2 || res[1].EventID != `"b"` {
		t.Fatalf("partial results %+v, %v", res, err)
	}
}

// TestNoRoomserver: a client with nobody serving says so at once.
func TestNoRoomserver(t *testing.T) {
	client := NewClient(bustest.Embedded(t))
	start := time.Now()
	if _, err := client.RoomVersion(context.Background(), "!room:test.local"); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("error %v, want bus.ErrNoResponders", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

// TestEveryErrorIsCarried reads roomserver/api's source: every exported
// Err* variable must have a code in sentinelCodes, and every error type
// must be carried by WithErrorType (NotAllowedError and
// PolicyRefusedError are the only ones), so
// that an error added to the api cannot lose its identity on the bus.
func TestEveryErrorIsCarried(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join("..", "api", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("api sources: %v %v", files, err)
	}
	var errorTypes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					vs, ok := spec.(*ast.ValueSpec)
					if !ok || d.Tok != token.VAR {
						continue
					}
					for _, n := range vs.Names {
						if !strings.HasPrefix(n.Name, "Err") {
							continue
						}
						if !sentinelNamed(n.Name) {
							t.Errorf("api.%s has no code in sentinelCodes (add it there and to sentinelNamed)", n.Name)
						}
					}
				}
			case *ast.FuncDecl:
				if d.Name.Name == "Error" && d.Recv != nil {
					errorTypes = append(errorTypes, types(d.Recv.List[0].Type))
				}
			}
		}
	}
	if strings.Join(errorTypes, ",") != "*NotAllowedError,*PolicyRefusedError" {
		t.Errorf("api's error types are %v; carry each new one with bus.WithErrorType in rpcOptions", errorTypes)
	}
}

// sentinelNamed reports whether sentinelCodes holds api's variable name.
func sentinelNamed(name string) bool {
	byName := map[string]error{
		"ErrRoomNotFound": api.ErrRoomNotFound, "ErrNotFound": api.ErrNotFound, "ErrTooLarge": api.ErrTooLarge,
		"ErrUnsupportedVersion": api.ErrUnsupportedVersion, "ErrInvalidEvent": api.ErrInvalidEvent,
		"ErrAliasExists": api.ErrAliasExists, "ErrBadPageToken": api.ErrBadPageToken,
		"ErrPolicyServerUnavailable": api.ErrPolicyServerUnavailable,
	}
	s, ok := byName[name]
	if !ok {
		return false
	}
	for _, v := range sentinelCodes() {
		if v == s {
			return true
		}
	}
	return false
}

// types spells a receiver type: *Name or Name.
func types(e ast.Expr) string {
	if star, ok := e.(*ast.StarExpr); ok {
		return "*" + types(star.X)
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return fmt.Sprintf("%T", e)
}

// BenchmarkTransport compares calls made on the roomserver itself (here a
// fake that answers at once) with the same calls over an embedded bus:
// the cost of the NATS transport alone, encoding and decoding included.
func BenchmarkTransport(b *testing.B) {
	bs := bustest.Embedded(b)
	f := &fake{}
	stop, err := Serve(bs, f)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	client := NewClient(bs)
	ctx := context.Background()
	// A member event as the roomserver stores it: some 450 bytes of PDU.
	member := api.Event{RoomVersion: "11", EventID: "$yRG7nSvdNrdGwlZiKk0yl4P8bF4rnsl9GVHtAyz8hRA", RoomID: "!room:test.local", StreamPos: 123456,
		JSON: json.RawMessage(`{"auth_events":["$a7nXf3eX1Zk5qU6mS3fQyqvVg5kQeYxJzQdYp5oWq1E","$b7nXf3eX1Zk5qU6mS3fQyqvVg5kQeYxJzQdYp5oWq1E","$c7nXf3eX1Zk5qU6mS3fQyqvVg5kQeYxJzQdYp5oWq1E"],` +
			`"content":{"displayname":"Agent 1234","membership":"join"},"depth":1234,"hashes":{"sha256":"Hq2Wv7mJz4lL0bY1o2V7Qz2Xx9uJkq9lq4Xo4bCq8Xk"},` +
			`"origin_server_ts":1700000000000,"prev_events":["$d7nXf3eX1Zk5qU6mS3fQyqvVg5kQeYxJzQdYp5oWq1E"],"room_id":"!room:test.local","sender":"@agent1234:test.local",` +
			`"signatures":{"test.local":{"ed25519:a_Abcd":"Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy"}},"state_key":"@agent1234:test.local","type":"m.room.member"}`)}
	for _, via := range []struct {
		name string
		rs   Roomserver
	}{{"direct", f}, {"bus", client}} {
		b.Run("Membership/"+via.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := via.rs.Membership(ctx, "!room:test.local", "@alice:test.local"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Send/"+via.name, func(b *testing.B) {
			ev := api.ProtoEvent{Type: "m.room.message", Sender: "@alice:test.local", Content: json.RawMessage(`{"msgtype":"m.text","body":"hello"}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := via.rs.Send(ctx, "!room:test.local", ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, members := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("CurrentState/%d/%s", members, via.name), func(b *testing.B) {
				f.mu.Lock()
				f.state = make([]api.Event, members)
				for i := range f.state {
					f.state[i] = member
				}
				f.mu.Unlock()
				b.ReportAllocs()
				for b.Loop() {
					if evs, err := via.rs.CurrentState(ctx, "!room:test.local"); err != nil || len(evs) != members {
						b.Fatal(len(evs), err)
					}
				}
			})
		}
	}
}
