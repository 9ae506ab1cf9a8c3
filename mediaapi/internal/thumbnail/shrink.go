package thumbnail

import (
	"image"
	"image/draw"
)

// boxShrink returns the part r of img shrunk k times in each dimension,
// each output pixel the average of a k×k block (the remainder at the
// right and bottom edges, under k pixels, is dropped). It is the cheap
// first step of a large reduction: the kernel scaler's cost grows with
// its source, a box average is one pass over the pixels.
func boxShrink(img image.Image, r image.Rectangle, k int) *image.RGBA {
	src := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(src, src.Bounds(), img, r.Min, draw.Src)
	w, h := r.Dx()/k, r.Dy()/k
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	n := uint32(k * k)
	sums := make([]uint32, w*4)
	for y := 0; y < h; y++ {
		clear(sums)
		for yy := y * k; yy < (y+1)*k; yy++ {
			row := src.Pix[yy*src.Stride : yy*src.Stride+w*k*4]
			for x := 0; x < w; x++ {
				var r, g, b, a uint32
				for i := x * k * 4; i < (x+1)*k*4; i += 4 {
					p := row[i : i+4 : i+4]
					r += uint32(p[0])
					g += uint32(p[1])
					b += uint32(p[2])
					a += uint32(p[3])
				}
				s := sums[x*4 : x*4+4 : x*4+4]
				s[0] += r
				s[1] += g
				s[2] += b
				s[3] += a
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+w*4]
		for i, s := range sums {
			out[i] = uint8((s + n/2) / n)
		}
	}
	return dst
}
