package bus

// Queries between components: "one interface, two transports". A
// component's api package defines an interface; in one process the caller
// holds the component itself, split across processes it holds a client
// (in the component's remote package) that makes each method a Call, and
// the component's process answers with Serve.
//
//	caller ── Call[Req,Resp] ── request: JSON Req, header Hs-Timeout-Ms ──▶ Serve[Req,Resp] ── h(ctx, req)
//	       ◀──────────────────── reply: {"result": Resp} or {"error": {"code", "message"}} ──┘
//
// Errors cross as a code from the service's ErrorCodes table, so that
// errors.Is(err, api.ErrSomething) holds on the caller's side too.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// queueGroup shares a subject's requests among all the processes
	// serving it: each request goes to one of them.
	queueGroup = "serve"
	// maxInFlight caps the requests one Serve handles at once; beyond it
	// requests wait in NATS.
	maxInFlight = 256
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

// validate rejects a table Serve could not send faithfully.
func (c ErrorCodes) validate() error {
	builtin := builtinCodes()
	for code, sentinel := range c {
		switch {
		case code == "":
			return errors.New("empty error code")
		case sentinel == nil:
			return fmt.Errorf("error code %q has no error", code)
		case code == CodeInternal || code == CodeBadRequest || builtin[code] != nil:
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
	return &RemoteError{Code: w.Code, Message: w.Message, sentinel: sentinel}
}

// RemoteError is an error a served handler returned, as the caller sees
// it. When Code is in the service's ErrorCodes (or is a context error's),
// it unwraps to that sentinel, so errors.Is works; otherwise Code is
// CodeInternal or an unknown code, and Message says what failed remotely.
type RemoteError struct {
	// Code is the error's code in the service's ErrorCodes.
	Code string
	// Message is the remote error's text.
	Message string
	// sentinel is the local error Code stands for; nil if unknown.
	sentinel error
}

// Error returns the remote message, or the code if there is none.
func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "remote error " + e.Code
	}
	return e.Message
}

// Unwrap returns the sentinel error of Code, or nil.
func (e *RemoteError) Unwrap() error { return e.sentinel }

// wireError is the error envelope on the bus.
type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// wireReply is the reply envelope on the bus: Result or Error.
type wireReply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

// RPCOption tunes Serve and Call.
type RPCOption func(*rpcOptions)

type rpcOptions struct {
	codes ErrorCodes
}

// WithErrors gives the service's error table; pass the same one to Serve
// and Call. Without it only context errors keep their identity.
func WithErrors(codes ErrorCodes) RPCOption {
	return func(o *rpcOptions) { o.codes = codes }
}

func newRPCOptions(opts []RPCOption) rpcOptions {
	var o rpcOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Serve answers requests on subject (relative, such as
// "homeserver.query.access_token") with h, several at once, sharing them
// with every other process serving the same subject. h's ctx carries the
// caller's deadline. stop stops taking requests and returns once the
// requests in hand are answered; it may be called more than once, and the
// Bus calls it on Close.
func Serve[Req, Resp any](b *Bus, subject string, h func(ctx context.Context, req Req) (Resp, error), opts ...RPCOption) (stop func(), err error) {
	o := newRPCOptions(opts)
	if err := o.codes.validate(); err != nil {
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
			reply := answer(ctx, m, h, o.codes)
			if err := m.Respond(reply); err != nil {
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
func answer[Req, Resp any](ctx context.Context, m *nats.Msg, h func(context.Context, Req) (Resp, error), codes ErrorCodes) []byte {
	timeout := DefaultCallTimeout
	if ms, err := strconv.ParseInt(m.Header.Get(headerTimeout), 10, 64); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var rep wireReply
	var req Req
	if err := json.Unmarshal(m.Data, &req); err != nil {
		rep.Error = &wireError{Code: CodeBadRequest, Message: "decode request: " + err.Error()}
	} else if resp, err := callSafely(ctx, h, req); err != nil {
		rep.Error = codes.encode(err)
	} else if rep.Result, err = json.Marshal(resp); err != nil {
		rep.Error = &wireError{Code: CodeInternal, Message: "encode reply: " + err.Error()}
	}
	data, err := json.Marshal(rep)
	if err != nil { // only a RawMessage could fail, and json.Marshal made it
		data = []byte(`{"error":{"code":"internal","message":"encode reply"}}`)
	}
	return data
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

// Call sends req to whichever process serves subject (relative) and
// returns its answer. It waits until ctx's deadline, or DefaultCallTimeout
// when ctx has none, and then returns an error wrapping
// context.DeadlineExceeded. The handler's error comes back as a
// *RemoteError that errors.Is matches against the sentinels of the
// ErrorCodes given WithErrors. ErrNoResponders means nobody serves subject.
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
	reply, err := b.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return zero, fmt.Errorf("call %s: %w", subject, ErrNoResponders)
	}
	if err != nil {
		return zero, fmt.Errorf("call %s: %w", subject, err)
	}
	var rep wireReply
	if err := json.Unmarshal(reply.Data, &rep); err != nil {
		return zero, fmt.Errorf("call %s: decode reply: %w", subject, err)
	}
	if rep.Error != nil {
		return zero, fmt.Errorf("call %s: %w", subject, o.codes.decode(*rep.Error))
	}
	var resp Resp
	if err := json.Unmarshal(rep.Result, &resp); err != nil {
		return zero, fmt.Errorf("call %s: decode result: %w", subject, err)
	}
	return resp, nil
}
