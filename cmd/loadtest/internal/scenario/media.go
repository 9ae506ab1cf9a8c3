package scenario

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/matrix"
)

// Capabilities of the media scenario.
const (
	capUpload   = "media upload"
	capDownload = "authenticated media download"
)

// Media is the media scenario: uploads of files of given sizes, each
// then downloaded a few times, by a few workers at once; every download
// is compared with what was uploaded.
type Media struct {
	sizesFlag                       string
	sizes                           []mediaSize
	uploads, downloads, concurrency int
	timing
}

// mediaSize is a file size and its label.
type mediaSize struct {
	label string
	bytes int
}

// Name implements Scenario.
func (s *Media) Name() string { return "media" }

// Describe implements Scenario.
func (s *Media) Describe() string {
	return "uploads and downloads of files of given sizes: latency and bytes per second"
}

// Flags implements Scenario.
func (s *Media) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.sizesFlag, "sizes", "10KiB,1MiB", "comma-separated file sizes (B, KiB, MiB; KB and MB are powers of ten)")
	fs.IntVar(&s.uploads, "uploads", 20, "measured uploads of each size (the window ends sooner when all are done)")
	fs.IntVar(&s.downloads, "downloads", 3, "downloads of each uploaded file")
	fs.IntVar(&s.concurrency, "concurrency", 4, "uploads and downloads in flight")
	s.timing.flags(fs, 2*time.Second, 60*time.Second)
}

// Check implements Scenario.
func (s *Media) Check() error {
	s.sizes = nil
	for _, f := range strings.Split(s.sizesFlag, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := ParseSize(f)
		if err != nil {
			return err
		}
		s.sizes = append(s.sizes, mediaSize{label: f, bytes: n})
	}
	switch {
	case len(s.sizes) == 0:
		return errors.New("--sizes names no size")
	case s.uploads < 1 || s.downloads < 0 || s.concurrency < 1:
		return errors.New("--uploads and --concurrency must be positive, --downloads at least 0")
	}
	return s.timing.check()
}

// ParseSize reads a size such as "512", "10KiB", "1MiB", "1MB"; KiB and
// MiB are powers of two, KB and MB powers of ten.
func ParseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}}
	num, mult := s, 1
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q: want a positive number with an optional B, KiB, MiB, KB or MB", s)
	}
	return n * mult, nil
}

// Params implements Scenario.
func (s *Media) Params() map[string]any {
	return s.timing.params(map[string]any{"sizes": s.sizesFlag, "uploads": s.uploads, "downloads": s.downloads, "concurrency": s.concurrency})
}

// Run implements Scenario.
func (s *Media) Run(ctx context.Context, e *Env) error {
	setupCtx, cancelSetup := e.setupContext(ctx)
	users, err := e.Users.Create(setupCtx, 1)
	cancelSetup()
	if err != nil {
		return err
	}
	u := users[0]
	counts := make([]atomic.Int64, len(s.sizes))
	var next atomic.Int64
	corrupt := e.Rec.Counter("download.corrupt")
	e.Progress.SetStatus(func() string {
		var parts []string
		for i, sz := range s.sizes {
			parts = append(parts, fmt.Sprintf("%s %d/%d", sz.label, counts[i].Load(), s.uploads))
		}
		return "uploads " + strings.Join(parts, ", ")
	})
	defer e.Progress.SetStatus(nil)

	done, finish := e.ender()
	stop := make(chan struct{})
	var fatal firstError
	var wg sync.WaitGroup
	for range s.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Fresh random content for every file, so that a server
			// that deduplicates media still stores each one.
			var seed [32]byte
			_, _ = crand.Read(seed[:]) // crypto/rand.Read never fails
			rng := rand.NewChaCha8(seed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Round robin over the sizes not yet done.
				i, ok := s.pick(&next, counts)
				if !ok {
					finish()
					return
				}
				sz := s.sizes[i]
				data := make([]byte, sz.bytes)
				_, _ = rng.Read(data) // ChaCha8.Read never fails
				start := time.Now()
				mxc, err := upload(ctx, u, data)
				series := e.Rec.Series("upload." + sz.label)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					series.Fail(start, matrix.ErrCode(err))
					if matrix.IsNotImplemented(err) {
						fatal.set(err)
						finish()
						return
					}
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				series.ObserveBytes(start, time.Since(start), int64(len(data)))
				dl := e.Rec.Series("download." + sz.label)
				for range s.downloads {
					start := time.Now()
					got, err := download(ctx, u, mxc)
					if err == nil && !bytes.Equal(got, data) {
						corrupt.Add(start, 1)
						err = matrix.Unexpectedf("downloaded %d bytes differ from the %d uploaded", len(got), len(data))
					}
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						dl.Fail(start, matrix.ErrCode(err))
						if matrix.IsNotImplemented(err) {
							fatal.set(err)
							finish()
							return
						}
						continue
					}
					dl.ObserveBytes(start, time.Since(start), int64(len(got)))
				}
				// A file counts once its downloads are done, so that the
				// window does not close on downloads still to come.
				if e.Rec.InWindow(start) && counts[i].Add(1) >= int64(s.uploads) {
					if _, more := s.pick(&next, counts); !more {
						finish()
						return
					}
				}
			}
		}()
	}
	e.window(s.warmup, s.duration, done)
	close(stop)
	wg.Wait()
	return fatal.get()
}

// pick returns the next size, round robin, among those whose measured
// uploads have not reached the count; ok is false when all have.
func (s *Media) pick(next *atomic.Int64, counts []atomic.Int64) (int, bool) {
	for range len(s.sizes) {
		i := int(next.Add(1)-1) % len(s.sizes)
		if counts[i].Load() < int64(s.uploads) {
			return i, true
		}
	}
	return 0, false
}

// upload posts data to the media repository and returns its MXC URI.
func upload(ctx context.Context, u *accounts.User, data []byte) (id.ContentURI, error) {
	var resp mautrix.RespMediaUpload
	_, err := u.MakeFullRequest(ctx, mautrix.FullRequest{
		Method:       http.MethodPost,
		URL:          u.BuildURLWithQuery(mautrix.MediaURLPath{"v3", "upload"}, map[string]string{"filename": "loadtest.bin"}),
		Headers:      http.Header{"Content-Type": {"application/octet-stream"}},
		RequestBytes: data,
		ResponseJSON: &resp,
	})
	if err != nil {
		return id.ContentURI{}, matrix.CheckImplemented(err, capUpload)
	}
	if resp.ContentURI.IsEmpty() {
		return id.ContentURI{}, matrix.Unexpectedf("upload answered without a content_uri")
	}
	return resp.ContentURI, nil
}

// download fetches mxc through the authenticated media API.
func download(ctx context.Context, u *accounts.User, mxc id.ContentURI) ([]byte, error) {
	resp, err := u.Download(ctx, mxc)
	if err != nil {
		return nil, matrix.CheckImplemented(err, capDownload)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read download: %w", err)
	}
	return data, nil
}
