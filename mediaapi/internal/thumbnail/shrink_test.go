package thumbnail

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func TestBoxShrink(t *testing.T) {
	// A 5×4 image whose 2×2 blocks average to known values; the fifth
	// column is the remainder, dropped.
	img := image.NewRGBA(image.Rect(10, 10, 15, 14)) // bounds not at 0,0
	vals := [4][5]uint8{
		{0, 100, 10, 10, 255},
		{100, 200, 10, 10, 255},
		{1, 1, 0, 255, 255},
		{1, 3, 255, 0, 255},
	}
	for y := 0; y < 4; y++ {
		for x := 0; x < 5; x++ {
			img.Set(10+x, 10+y, color.RGBA{vals[y][x], vals[y][x], vals[y][x], 255})
		}
	}
	got := boxShrink(img, img.Bounds(), 2)
	if got.Bounds() != image.Rect(0, 0, 2, 2) {
		t.Fatalf("bounds %v", got.Bounds())
	}
	want := [2][2]uint8{{100, 10}, {2, 128}} // (1+1+1+3)/4 = 1.5 rounds to 2; 510/4 = 127.5 to 128
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			c := got.RGBAAt(x, y)
			if c.R != want[y][x] || c.A != 255 {
				t.Errorf("pixel %d,%d = %v, want %d", x, y, c, want[y][x])
			}
		}
	}
	// A part of the image: the right half's top-left block.
	part := boxShrink(img, image.Rect(12, 10, 14, 12), 2)
	if c := part.RGBAAt(0, 0); c.R != 10 {
		t.Errorf("part: %v, want 10", c)
	}
}

// TestMakeLargeReduction goes through the box step (1000×500 to 64×64):
// the size is right and the picture is the middle of the original.
func TestMakeLargeReduction(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 1000, 500))
	for y := 0; y < 500; y++ {
		for x := 0; x < 1000; x++ {
			c := color.RGBA{0, 0, 255, 255} // blue edges
			if x >= 250 && x < 750 {
				c = color.RGBA{255, 0, 0, 255} // the red middle square
			}
			src.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, src); err != nil {
		t.Fatal(err)
	}
	res, err := Make(bytes.NewReader(buf.Bytes()), 64, 64, Crop, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(res.Data))
	if err != nil || img.Bounds() != image.Rect(0, 0, 64, 64) {
		t.Fatalf("thumbnail %v %v", img.Bounds(), err)
	}
	for _, p := range []image.Point{{0, 0}, {32, 32}, {63, 63}} {
		if r, _, b, _ := img.At(p.X, p.Y).RGBA(); r>>8 < 250 || b>>8 > 5 {
			t.Errorf("pixel %v is %v, want the red middle", p, img.At(p.X, p.Y))
		}
	}
}
