package antivirus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		reply    string
		infected bool
		ok       bool
	}{
		{"stream: OK", false, true},
		{"stream: Eicar-Test-Signature FOUND", true, false},
		{"INSTREAM size limit exceeded. ERROR", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		err := parseReply(tt.reply)
		if (err == nil) != tt.ok || errors.Is(err, ErrInfected) != tt.infected {
			t.Errorf("parseReply(%q) = %v", tt.reply, err)
		}
	}
}

func TestNewAddress(t *testing.T) {
	for _, a := range []string{"unix:/run/clamd.ctl", "tcp:127.0.0.1:3310"} {
		if _, err := New(a); err != nil {
			t.Errorf("New(%q): %v", a, err)
		}
	}
	for _, a := range []string{"", "unix:", "/run/clamd.ctl", "http://x"} {
		if _, err := New(a); err == nil {
			t.Errorf("New(%q) succeeded", a)
		}
	}
}

// TestScanProtocol checks the INSTREAM framing against a stand-in clamd
// that reassembles the chunks (the real clamd is tested in tests/).
func TestScanProtocol(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				cmd, _ := r.ReadString(0)
				if cmd != "zINSTREAM\x00" {
					conn.Write([]byte("UNKNOWN COMMAND\x00"))
					return
				}
				var got bytes.Buffer
				for {
					var n uint32
					if binary.Read(r, binary.BigEndian, &n) != nil {
						return
					}
					if n == 0 {
						break
					}
					io.CopyN(&got, r, int64(n))
				}
				if strings.Contains(got.String(), "VIRUS") {
					conn.Write([]byte("stream: Test.Virus FOUND\x00"))
				} else {
					conn.Write([]byte("stream: OK\x00"))
				}
			}()
		}
	}()
	c, err := New("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 3*chunkSize+17)
	if err := c.Scan(context.Background(), bytes.NewReader(big)); err != nil {
		t.Fatalf("clean file: %v", err)
	}
	// The marker straddles two chunks.
	infected := append(bytes.Repeat([]byte("x"), chunkSize-2), []byte("VIRUS")...)
	if err := c.Scan(context.Background(), bytes.NewReader(infected)); !errors.Is(err, ErrInfected) || !strings.Contains(err.Error(), "Test.Virus") {
		t.Fatalf("infected file: %v", err)
	}
	ln.Close()
	if err := c.Scan(context.Background(), bytes.NewReader(big)); err == nil || errors.Is(err, ErrInfected) {
		t.Fatalf("clamd gone: %v", err)
	}
}
