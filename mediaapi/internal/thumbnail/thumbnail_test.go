package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"runtime"
	"testing"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name             string
		w, h, reqW, reqH int
		method           string
		wantSrc          image.Rectangle
		wantW, wantH     int
		wantKeep         bool
	}{
		{"crop square of landscape", 400, 200, 100, 100, Crop, image.Rect(100, 0, 300, 200), 100, 100, false},
		{"crop landscape of portrait", 200, 400, 100, 50, Crop, image.Rect(0, 150, 200, 250), 100, 50, false},
		{"crop same ratio", 400, 200, 200, 100, Crop, image.Rect(0, 0, 400, 200), 200, 100, false},
		{"crop larger than original", 400, 200, 800, 800, Crop, image.Rect(100, 0, 300, 200), 200, 200, false},
		{"crop larger, same ratio: original", 400, 200, 800, 400, Crop, image.Rect(0, 0, 400, 200), 400, 200, true},
		{"scale covers the request", 400, 200, 100, 100, Scale, image.Rect(0, 0, 400, 200), 200, 100, false},
		{"scale wide request", 400, 200, 300, 50, Scale, image.Rect(0, 0, 400, 200), 300, 150, false},
		{"scale rounds up", 1000, 333, 100, 100, Scale, image.Rect(0, 0, 1000, 333), 301, 100, false},
		{"scale larger than original", 400, 200, 500, 100, Scale, image.Rect(0, 0, 400, 200), 400, 200, true},
		{"scale same size", 400, 200, 400, 200, Scale, image.Rect(0, 0, 400, 200), 400, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, w, h, keep := Plan(tt.w, tt.h, tt.reqW, tt.reqH, tt.method)
			if src != tt.wantSrc || w != tt.wantW || h != tt.wantH || keep != tt.wantKeep {
				t.Fatalf("Plan = %v %dx%d keep=%v, want %v %dx%d keep=%v", src, w, h, keep, tt.wantSrc, tt.wantW, tt.wantH, tt.wantKeep)
			}
			if !keep && (w < min(tt.reqW, tt.w) && h < min(tt.reqH, tt.h)) {
				t.Fatalf("%dx%d smaller than asked", w, h)
			}
		})
	}
}

func encode(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 99, 255})
		}
	}
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "gif":
		err = gif.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMake(t *testing.T) {
	for _, tt := range []struct{ format, wantType string }{{"png", "image/png"}, {"jpeg", "image/jpeg"}, {"gif", "image/png"}} {
		t.Run(tt.format, func(t *testing.T) {
			res, err := Make(bytes.NewReader(encode(t, tt.format, 300, 150)), 64, 64, Crop, 1e6)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := image.DecodeConfig(bytes.NewReader(res.Data))
			if err != nil || cfg.Width != 64 || cfg.Height != 64 || res.ContentType != tt.wantType || res.Width != 64 {
				t.Fatalf("thumbnail %+v %s %v", cfg, res.ContentType, err)
			}
			res, err = Make(bytes.NewReader(encode(t, tt.format, 300, 150)), 1000, 1000, Scale, 1e6)
			if err != nil || !res.Original || res.Data != nil || res.ContentType != "image/"+tt.format {
				t.Fatalf("larger than original: %+v %v", res, err)
			}
		})
	}
}

// bombPNG is a PNG header declaring w×h pixels and no real data.
func bombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	return b.Bytes()
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"decompression bomb", bombPNG(50000, 50000), ErrTooManyPixels},
		{"just over the limit", bombPNG(1001, 1000), ErrTooManyPixels},
		{"text", []byte("hello, not an image"), ErrNotImage},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), ErrNotImage},
		{"truncated png", []byte("\x89PNG\r\n\x1a\n\x00\x00"), ErrNotImage},
		{"empty", nil, ErrNotImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Make(bytes.NewReader(tt.data), 32, 32, Crop, 1_000_000)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Make: %v, want %v", err, tt.want)
			}
			// Decoding the bomb would take 10 GB; refusing it, next to nothing.
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("%d bytes allocated to refuse it", n)
			}
		})
	}
	if _, err := Probe(bytes.NewReader(bombPNG(1000, 1000)), 1_000_000); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
}

// BenchmarkMake is thumbnail generation from a 1920×1080 JPEG (a photo)
// to the 320×240 scale size.
func BenchmarkMake(b *testing.B) {
	for _, format := range []string{"jpeg", "png"} {
		b.Run(format, func(b *testing.B) {
			data := encode(b, format, 1920, 1080)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Make(bytes.NewReader(data), 320, 240, Scale, 32_000_000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
