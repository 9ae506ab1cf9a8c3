// Package antivirus scans files with ClamAV's daemon, clamd, over its
// socket (the INSTREAM command), before the media component acknowledges an
// upload or caches a remote file.
package antivirus

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrInfected: clamd found a signature; the error names it.
var ErrInfected = errors.New("file infected")

// chunkSize is the INSTREAM chunk length, under clamd's default
// StreamMaxLength granularity.
const chunkSize = 64 << 10

// scanTimeout bounds one scan, the connection included.
const scanTimeout = 2 * time.Minute

// Clamd is a clamd client. The zero value is unusable; use New.
type Clamd struct {
	network, address string
}

// New returns a client of the clamd at addr, "unix:/path" or
// "tcp:host:port" (the media.clamd_address setting).
func New(addr string) (*Clamd, error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || address == "" || (network != "unix" && network != "tcp") {
		return nil, fmt.Errorf("clamd address %q: want unix:/path or tcp:host:port", addr)
	}
	return &Clamd{network: network, address: address}, nil
}

// Scan streams r to clamd. It returns nil when the file is clean, an error
// wrapping ErrInfected (with the signature's name) when it is not, and any
// other error when clamd could not say: callers refuse the file then too.
func (c *Clamd) Scan(ctx context.Context, r io.Reader) error {
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return fmt.Errorf("clamd: connect: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("zINSTREAM\x00")); err != nil {
		return fmt.Errorf("clamd: send command: %w", err)
	}
	buf := make([]byte, 4+chunkSize)
	for {
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				// clamd closes the stream when it passes its size
				// limit; its answer says so.
				break
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("clamd: read file: %w", rerr)
		}
	}
	_, _ = conn.Write([]byte{0, 0, 0, 0})
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil && reply == "" {
		return fmt.Errorf("clamd: read answer: %w", err)
	}
	return parseReply(strings.TrimRight(reply, "\x00\n"))
}

// parseReply reads clamd's answer to INSTREAM: "stream: OK",
// "stream: NAME FOUND" or "… ERROR".
func parseReply(reply string) error {
	body := strings.TrimPrefix(reply, "stream: ")
	switch {
	case body == "OK":
		return nil
	case strings.HasSuffix(body, " FOUND"):
		return fmt.Errorf("%w: %s", ErrInfected, strings.TrimSuffix(body, " FOUND"))
	}
	return fmt.Errorf("clamd: %s", reply)
}
