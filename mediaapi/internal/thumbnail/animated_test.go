package thumbnail

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"testing"
)

// animatedGIF encodes frames frames of w×h, each a different colour.
func animatedGIF(t testing.TB, frames, w, h int) []byte {
	t.Helper()
	pal := color.Palette{color.Transparent, color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}}
	g := &gif.GIF{}
	for i := 0; i < frames; i++ {
		p := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range p.Pix {
			p.Pix[j] = uint8(1 + i%3)
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 5)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGIFFrames(t *testing.T) {
	for _, n := range []int{1, 2, 7} {
		got, err := gifFrames(bytes.NewReader(animatedGIF(t, n, 20, 10)))
		if err != nil || got != n {
			t.Errorf("%d frames: counted %d (%v)", n, got, err)
		}
	}
	if _, err := gifFrames(bytes.NewReader([]byte("GIF89a\x01"))); err == nil {
		t.Error("truncated GIF counted")
	}
}

func TestMakeAnimated(t *testing.T) {
	res, err := MakeAnimated(bytes.NewReader(animatedGIF(t, 3, 200, 100)), 50, 50, Crop, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(bytes.NewReader(res.Data))
	if err != nil || res.ContentType != "image/gif" || len(g.Image) != 3 || g.Config.Width != 50 || g.Config.Height != 50 {
		t.Fatalf("animated thumbnail: %s, %v", res.ContentType, err)
	}
	// The frames keep their colours: red, green, blue.
	for i, want := range []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}} {
		r, gr, b, _ := g.Image[i].At(25, 25).RGBA()
		if uint8(r>>8) != want.R || uint8(gr>>8) != want.G || uint8(b>>8) != want.B {
			t.Errorf("frame %d: %v, want %v", i, g.Image[i].At(25, 25), want)
		}
	}

	// One frame: a still thumbnail.
	res, err = MakeAnimated(bytes.NewReader(animatedGIF(t, 1, 200, 100)), 50, 50, Crop, 1e6)
	if err != nil || res.ContentType != "image/png" {
		t.Fatalf("one frame: %s %v", res.ContentType, err)
	}
	// Too many frames for the pixel limit: refused before decoding.
	_, err = MakeAnimated(bytes.NewReader(animatedGIF(t, 5, 100, 100)), 50, 50, Crop, 40_000)
	if !errors.Is(err, ErrTooManyPixels) {
		t.Fatalf("5 frames of 100×100 over a 40 000 pixel limit: %v", err)
	}
	// Not a GIF: Make's answer.
	if _, err := MakeAnimated(bytes.NewReader(bombPNG(50000, 50000)), 50, 50, Crop, 1e6); !errors.Is(err, ErrTooManyPixels) {
		t.Fatalf("png bomb: %v", err)
	}
}
