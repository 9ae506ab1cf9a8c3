package bus

// Queries between components: "one interface, two transports". A
// component's api package defines an interface; in one process the caller
// holds the component itself, split across processes it holds a client
// (in the component's remote package) that makes each method a Call, and
// the component's process answers with Serve.
//
//	caller ── Call[Req,Resp] ── request: JSON Req, header Hs-Timeout-Ms ──▶ Serve[Req,Resp] ── h(ctx, req)
//	       ◀── reply: {"result": Resp} and/or {"error": {"code", "message", "detail"}} ──┘
//
// Errors cross as a code from the service's ErrorCodes table, so that
// errors.Is(err, api.ErrSomething) holds on the caller's side too; an
// error type given WithErrorType crosses with its fields ("detail"), so
// that errors.As finds it. A reply larger than NATS carries in one
// message (max_payload, 1 MB by default) is sent in consecutive parts on
// the caller's own reply subject, the first saying how many there are.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultCallTimeout bounds a Call whose ctx has no deadline, and the
// handler of a request that came without a timeout.
const DefaultCallTimeout = 10 * time.Second

const (
	// headerTimeout carries the caller's remaining time in milliseconds,
	// so that the server gives up when the caller has; a duration, not an
	// instant, so that the two machines' clocks need not agree.
	headerTimeout = "Hs-Timeout-Ms"
	// headerStatus and statusNoResponders are how the NATS server says
	// that a request found no subscriber (nats.go keeps its own private).
	headerStatus       = "Status"
	statusNoResponders = "503"
	// headerParts, on the first message of a reply sent in parts, says
	// how many messages the reply takes.
	headerParts = "Hs-Parts"
	// queueGroup shares a subject's requests among all the processes
	// serving it: each request goes to one of them.
	queueGroup = "serve"
	// maxInFlight caps the requests one Serve handles at once; beyond it
	// requests wait in NATS.
	maxInFlight = 256
	// partHeadroom is what a reply part leaves of max_payload for its
	// headers, which NATS counts in the payload.
	partHeadroom = 1024
	// MaxReplyBytes caps an encoded reply: a handler's answer above it
	// reaches the caller as a CodeInternal error saying so. It holds the
	// state of a room of some 30 000 members (about 1 kB per member
	// event).
	MaxReplyBytes = 32 << 20
)

// Codes every service shares; a service's own ErrorCodes must not reuse
// them.
const (
	// CodeInternal is an error the service did not map to a code; its
	// message says what failed.
	CodeInternal = "internal"
	// CodeBadRequest is a request the service could not decode.
	CodeBadRequest = "bad_request"
	// CodeDeadlineExceeded carries context.DeadlineExceeded.
	CodeDeadlineExceeded = "deadline_exceeded"
	// CodeCanceled carries context.Canceled.
	CodeCanceled = "canceled"
)

// ErrNoResponders is returned by Call when no process serves the subject
// (the component is not running anywhere); it is returned at once, without
// waiting for the deadline.
var ErrNoResponders = errors.New("no process serves this subject")

// ErrorCodes maps the codes a service sends across the bus to its sentinel
// errors, one entry per sentinel the caller may test with errors.Is. Both
// sides use the same table: Serve sends the code of the first sentinel (in
// code order) that the handler's error matches, Call turns it back into a
// *RemoteError that unwraps to that sentinel.
type ErrorCodes map[string]error

// builtinCodes are the codes of the context errors.
func builtinCodes() ErrorCodes {
	return ErrorCodes{CodeDeadlineExceeded: context.DeadlineExceeded, CodeCanceled: context.Canceled}
}

// reserved reports whether code is one of the codes every service shares.
func reserved(code string) bool {
	return code == CodeInternal || code == CodeBadRequest || builtinCodes()[code] != nil
}

// validate rejects a table Serve could not send faithfully.
func (c ErrorCodes) validate() error {
	for code, sentinel := range c {
		switch {
		case code == "":
			return errors.New("empty error code")
		case sentinel == nil:
			return fmt.Errorf("error code %q has no error", code)
		case reserved(code):
			return fmt.Errorf("error code %q is reserved", code)
		}
	}
	return nil
}

// encode returns the wire form of err.
func (c ErrorCodes) encode(err error) *wireError {
	for _, table := range []ErrorCodes{c, builtinCodes()} {
		codes := make([]string, 0, len(table))
		for code := range table {
			codes = append(codes, code)
		}
		slices.Sort(codes)
		for _, code := range codes {
			if errors.Is(err, table[code]) {
				return &wireError{Code: code, Message: err.Error()}
			}
		}
	}
	return &wireError{Code: CodeInternal, Message: err.Error()}
}

// decode returns the caller's error for w.
func (c ErrorCodes) decode(w wireError) error {
	sentinel := c[w.Code]
	if sentinel == nil {
		sentinel = builtinCodes()[w.Code]
	}
	return &RemoteError{Code: w.Code, Message: w.Message, local: sentinel}
}

// errorType is an error type that crosses the bus with its fields
// (WithErrorType).
type errorType struct {
	code string
	// find returns the JSON of the first error of the type in err's
	// tree; false when there is none.
	find func(err error) (json.RawMessage, bool)
	// rebuild returns a new error of the type from that JSON.
	rebuild func(detail json.RawMessage) (error, error)
}

// RemoteError is an error a served handler returned, as the caller sees
// it. When Code is in the service's ErrorCodes (or is a context error's),
// it unwraps to that sentinel, so errors.Is works; when Code names an
// error type of WithErrorType, it unwraps to an error of that type rebuilt
// with the remote one's fields, so errors.As works; otherwise Code is
// CodeInternal or an unknown code, and Message says what failed remotely.
type RemoteError struct {
	// Code is the error's code in the service's ErrorCodes.
	Code string
	// Message is the remote error's text.
	Message string
	// local is the local error Code stands for; nil if unknown.
	local error
}

// Error returns the remote message, or the code if there is none.
func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "remote error " + e.Code
	}
	return e.Message
}

// Unwrap returns the sentinel error of Code, or the rebuilt typed error,
// or nil.
func (e *RemoteError) Unwrap() error { return e.local }

// wireError is the error envelope on the bus.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Detail is the JSON of an error of a WithErrorType type; absent for
	// the other codes.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// wireReply is the reply envelope on the bus: Result, Error, or both when
// the handler returned a partial result with its error. Result is typed,
// not raw JSON, so that a reply is encoded and decoded in one pass each.
type wireReply[Resp any] struct {
	Result *Resp      `json:"result,omitempty"`
	Error  *wireError `json:"error,omitempty"`
}

// errorReply is the encoded reply of an error alone.
func errorReply(w *wireError) []byte {
	data, err := json.Marshal(wireReply[struct{}]{Error: w})
	if err != nil { // a struct of strings always encodes
		data = []byte(`{"error":{"code":"internal","message":"encode error"}}`)
	}
	return data
}

// RPCOption tunes Serve and Call.
type RPCOption func(*rpcOptions)

type rpcOptions struct {
	codes ErrorCodes
	// types are the WithErrorType types, in the order given.
	types []errorType
}

// WithErrors gives the service's error table; pass the same one to Serve
// and Call. Without it only context errors keep their identity.
func WithErrors(codes ErrorCodes) RPCOption {
	return func(o *rpcOptions) { o.codes = codes }
}

// WithErrorType has errors of type *T (such as a *NotAllowedError with its
// Reason) cross the bus with their exported fields, encoded as JSON, so
// that errors.As finds a *T with the same fields on the caller's side.
// code names the type on the wire, like an ErrorCodes entry, and must not
// be one of them. An error that holds a *T is sent as the *T even when it
// also wraps a sentinel of the table. Pass the same options to Serve and
// Call.
func WithErrorType[T any, PT interface {
	*T
	error
}](code string) RPCOption {
	t := errorType{
		code: code,
		find: func(err error) (json.RawMessage, bool) {
			var target PT
			if !errors.As(err, &target) {
				return nil, false
			}
			detail, mErr := json.Marshal(target)
			return detail, mErr == nil
		},
		rebuild: func(detail json.RawMessage) (error, error) {
			target := PT(new(T))
			if err := json.Unmarshal(detail, target); err != nil {
				return nil, err
			}
			return target, nil
		},
	}
	return func(o *rpcOptions) { o.types = append(o.types, t) }
}

func newRPCOptions(opts []RPCOption) rpcOptions {
	var o rpcOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// validate rejects options Serve could not send faithfully.
func (o rpcOptions) validate() error {
	if err := o.codes.validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range o.types {
		switch {
		case t.code == "":
			return errors.New("empty error code")
		case reserved(t.code):
			return fmt.Errorf("error code %q is reserved", t.code)
		case o.codes[t.code] != nil || seen[t.code]:
			return fmt.Errorf("error code %q is given twice", t.code)
		}
		seen[t.code] = true
	}
	return nil
}

// encode returns the wire form of err: its error type's, else its
// sentinel's, else CodeInternal.
func (o rpcOptions) encode(err error) *wireError {
	for _, t := range o.types {
		if detail, ok := t.find(err); ok {
			return &wireError{Code: t.code, Message: err.Error(), Detail: detail}
		}
	}
	return o.codes.encode(err)
}

// decode returns the caller's error for w.
func (o rpcOptions) decode(w wireError) error {
	for _, t := range o.types {
		if t.code != w.Code {
			continue
		}
		local, err := t.rebuild(w.Detail)
		if err != nil { // the code is kept; only errors.As misses
			local = nil
		}
		return &RemoteError{Code: w.Code, Message: w.Message, local: local}
	}
	return o.codes.decode(w)
}

// Serve answers requests on subject (relative, such as
// "homeserver.query.access_token") with h, several at once, sharing them
// with every other process serving the same subject. h's ctx carries the
// caller's deadline. A result h returns with its error (the part of the
// work done before it failed) reaches the caller too, unless it is the
// zero value. stop stops taking requests and returns once the requests in
// hand are answered; it may be called more than once, and the Bus calls it
// on Close.
func Serve[Req, Resp any](b *Bus, subject string, h func(ctx context.Context, req Req) (Resp, error), opts ...RPCOption) (stop func(), err error) {
	o := newRPCOptions(opts)
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	if err := validSubject(subject); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	log := b.log.WithField(fieldSubject, subject)
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxInFlight)
		// mu guards stopped, so that no request is added to wg once stop
		// waits on it.
		mu      sync.Mutex
		stopped bool
	)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := b.nc.QueueSubscribe(b.subject(subject), queueGroup, func(m *nats.Msg) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			reply := answer(ctx, m, h, o)
			if err := b.respond(m, reply); err != nil {
				log.WithError(err).Debug("reply not sent")
			}
		}()
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("serve %s: subscribe: %w", subject, err)
	}
	var once sync.Once
	stopServing := func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
				log.WithError(err).Warn("unsubscribe")
			}
			mu.Lock()
			stopped = true
			mu.Unlock()
			wg.Wait()
			cancel()
		})
	}
	unregister, err := b.register(stopServing)
	if err != nil {
		stopServing()
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	return func() { stopServing(); unregister() }, nil
}

// answer runs h on one request and returns the encoded reply.
func answer[Req, Resp any](ctx context.Context, m *nats.Msg, h func(context.Context, Req) (Resp, error), o rpcOptions) []byte {
	timeout := DefaultCallTimeout
	if ms, err := strconv.ParseInt(m.Header.Get(headerTimeout), 10, 64); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var req Req
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return errorReply(&wireError{Code: CodeBadRequest, Message: "decode request: " + err.Error()})
	}
	resp, err := callSafely(ctx, h, req)
	var rep wireReply[Resp]
	if err != nil {
		rep.Error = o.encode(err)
		if reflect.ValueOf(&resp).Elem().IsZero() {
			return errorReply(rep.Error)
		}
	}
	rep.Result = &resp
	data, mErr := json.Marshal(rep)
	switch {
	case mErr == nil:
		return data
	case err != nil: // a partial result that does not encode is left out
		return errorReply(rep.Error)
	default:
		return errorReply(&wireError{Code: CodeInternal, Message: "encode reply: " + mErr.Error()})
	}
}

// callSafely turns a handler panic into an error: one bad request must not
// take the serving process down.
func callSafely[Req, Resp any](ctx context.Context, h func(context.Context, Req) (Resp, error), req Req) (resp Resp, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, req)
}

// partSize is the most data one reply message carries on this connection.
func (b *Bus) partSize() int {
	return max(int(b.nc.MaxPayload())-partHeadroom, partHeadroom)
}

// respond sends the encoded reply to m's reply subject: in one message
// when it fits, else in consecutive parts, the first carrying headerParts.
// NATS keeps the order of one connection's messages to one subscriber, so
// the caller reads the parts in order. A reply over MaxReplyBytes is
// replaced by an error saying so.
func (b *Bus) respond(m *nats.Msg, data []byte) error {
	part := b.partSize()
	if len(data) <= part {
		return m.Respond(data)
	}
	if len(data) > MaxReplyBytes {
		return m.Respond(errorReply(&wireError{Code: CodeInternal,
			Message: fmt.Sprintf("reply of %d bytes is larger than the bus carries (%d)", len(data), MaxReplyBytes)}))
	}
	n := (len(data) + part - 1) / part
	for i := range n {
		msg := nats.NewMsg(m.Reply)
		msg.Data = data[i*part : min((i+1)*part, len(data))]
		if i == 0 {
			msg.Header.Set(headerParts, strconv.Itoa(n))
		}
		if err := b.nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("reply part %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// Call sends req to whichever process serves subject (relative) and
// returns its answer. It waits until ctx's deadline, or DefaultCallTimeout
// when ctx has none, and then returns an error wrapping
// context.DeadlineExceeded. The handler's error comes back as a
// *RemoteError that errors.Is matches against the sentinels of the
// ErrorCodes given WithErrors (and errors.As against the types given
// WithErrorType), with the partial result the handler returned beside it,
// if any (else the zero Resp). ErrNoResponders means nobody serves
// subject. A request larger than NATS's max_payload fails at once.
func Call[Req, Resp any](ctx context.Context, b *Bus, subject string, req Req, opts ...RPCOption) (Resp, error) {
	var zero Resp
	o := newRPCOptions(opts)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	data, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("call %s: encode request: %w", subject, err)
	}
	msg := nats.NewMsg(b.subject(subject))
	msg.Data = data
	msg.Header.Set(headerTimeout, strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10))
	reply, err := b.request(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return zero, fmt.Errorf("call %s: %w", subject, ErrNoResponders)
	}
	if err != nil {
		return zero, fmt.Errorf("call %s: %w", subject, err)
	}
	var rep wireReply[Resp]
	if err := json.Unmarshal(reply, &rep); err != nil {
		// A partial result that does not decode must not hide the error.
		var errOnly wireReply[json.RawMessage]
		if json.Unmarshal(reply, &errOnly) != nil || errOnly.Error == nil {
			return zero, fmt.Errorf("call %s: decode reply: %w", subject, err)
		}
		rep = wireReply[Resp]{Error: errOnly.Error}
	}
	if rep.Error != nil {
		resp := zero
		if rep.Result != nil {
			resp = *rep.Result
		}
		return resp, fmt.Errorf("call %s: %w", subject, o.decode(*rep.Error))
	}
	if rep.Result == nil { // JSON null: a nil slice, map or pointer
		return zero, nil
	}
	return *rep.Result, nil
}

// request publishes msg with a reply subject of its own and returns the
// reply's data, put together again when it came in parts.
func (b *Bus) request(ctx context.Context, msg *nats.Msg) ([]byte, error) {
	ch := make(chan *nats.Msg, MaxReplyBytes/b.partSize()+2)
	reply, done, err := b.replies.await(b.nc, ch)
	if err != nil {
		return nil, err
	}
	defer done()
	msg.Reply = reply
	if err := b.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	next := func() (*nats.Msg, error) {
		select {
		case m := <-ch:
			return m, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	first, err := next()
	if err != nil {
		return nil, err
	}
	if len(first.Data) == 0 && first.Header.Get(headerStatus) == statusNoResponders {
		return nil, nats.ErrNoResponders
	}
	parts := first.Header.Get(headerParts)
	if parts == "" {
		return first.Data, nil
	}
	n, err := strconv.Atoi(parts)
	if err != nil || n < 2 || n > cap(ch) {
		return nil, fmt.Errorf("reply in %q parts", parts)
	}
	data := make([]byte, 0, n*len(first.Data))
	data = append(data, first.Data...)
	for i := 1; i < n; i++ {
		m, err := next()
		if err != nil {
			return nil, fmt.Errorf("reply part %d of %d: %w", i+1, n, err)
		}
		data = append(data, m.Data...)
	}
	return data, nil
}

// replyMux routes the replies to this Bus's requests, each of which may
// take several messages, from one wildcard subscription to the channel of
// the request waiting for them. (nats.go's own shared reply subscription
// delivers only a reply's first message; a subscription per request would
// cost half as much again per Call.)
type replyMux struct {
	// mu guards every field.
	mu sync.Mutex
	// prefix is the wildcard subscription's subject without its last
	// token; empty until the first request subscribes.
	prefix  string
	next    uint64
	waiting map[string]chan<- *nats.Msg
}

// await returns a new reply subject whose messages go to ch until done is
// called.
func (r *replyMux) await(nc *nats.Conn, ch chan<- *nats.Msg) (subject string, done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prefix == "" {
		prefix := nc.NewInbox()
		if _, err := nc.Subscribe(prefix+".*", r.route); err != nil {
			return "", nil, fmt.Errorf("subscribe to replies: %w", err)
		}
		r.prefix, r.waiting = prefix, map[string]chan<- *nats.Msg{}
	}
	r.next++
	subject = r.prefix + "." + strconv.FormatUint(r.next, 36)
	r.waiting[subject] = ch
	return subject, func() {
		r.mu.Lock()
		delete(r.waiting, subject)
		r.mu.Unlock()
	}, nil
}

// route hands m to the request waiting for it. It never blocks: a
// request's channel holds its largest reply, and a message for a request
// that gave up is dropped.
func (r *replyMux) route(m *nats.Msg) {
	r.mu.Lock()
	ch := r.waiting[m.Subject]
	r.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default:
	}
}
