// Package thumbnail makes thumbnails of JPEG, PNG, GIF (first frame) and
// WebP images, as the spec's thumbnail rules say: "crop" gives the
// requested aspect ratio, "scale" keeps the original's, the result is at
// least the requested size unless the original is smaller, and nothing is
// upscaled. An image's size is read from its header before any pixel is
// decoded, so that a small file declaring a huge image (a decompression
// bomb) is refused without allocating it.
package thumbnail

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Sentinel errors of Make and Probe.
var (
	// ErrNotImage: the content is not an image of a supported format.
	ErrNotImage = errors.New("not a supported image")
	// ErrTooManyPixels: the image is larger than the pixel limit.
	ErrTooManyPixels = errors.New("image too large to thumbnail")
)

// Methods of thumbnailing.
const (
	// Crop fills the requested size exactly, cropping the middle of the
	// image to the requested aspect ratio.
	Crop = "crop"
	// Scale keeps the original aspect ratio.
	Scale = "scale"
)

// Info is what an image's header says.
type Info struct {
	// Format is "jpeg", "png", "gif" or "webp".
	Format        string
	Width, Height int
}

// decoders are the formats supported, by the name image.DecodeConfig
// would give them; they are called directly rather than registered with
// package image, so that no other format sneaks in.
var decoders = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
	magic  func([]byte) bool
}{
	"jpeg": {jpeg.DecodeConfig, jpeg.Decode, func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xff\xd8")) }},
	"png":  {png.DecodeConfig, png.Decode, func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }},
	// gif.Decode returns the first frame only.
	"gif": {gif.DecodeConfig, gif.Decode, func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
	}},
	"webp": {webp.DecodeConfig, webp.Decode, func(b []byte) bool {
		return len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WEBP"
	}},
}

// sniff names the format of the content starting with head.
func sniff(head []byte) (string, bool) {
	for name, d := range decoders {
		if d.magic(head) {
			return name, true
		}
	}
	return "", false
}

// Probe reads r's header and returns the image's format and size, failing
// with ErrNotImage for anything but the supported formats and with
// ErrTooManyPixels when width times height passes maxPixels.
func Probe(r io.Reader, maxPixels int64) (Info, error) {
	var head [12]byte
	n, _ := io.ReadFull(r, head[:])
	format, ok := sniff(head[:n])
	if !ok {
		return Info{}, ErrNotImage
	}
	cfg, err := decoders[format].config(io.MultiReader(bytes.NewReader(head[:n]), r))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s header: %v", ErrNotImage, format, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return Info{}, fmt.Errorf("%w: %dx%d", ErrTooManyPixels, cfg.Width, cfg.Height)
	}
	return Info{Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

// Result is a thumbnail.
type Result struct {
	// Original is set when the original image already follows the rules
	// (it is no larger than asked, in the right aspect ratio): serve it
	// as it is, as ContentType (the type its header shows). Data is then
	// nil.
	Original bool
	// Data is the encoded thumbnail, of ContentType (image/jpeg for a
	// JPEG original, image/png otherwise, which keeps transparency).
	Data        []byte
	ContentType string
	// Width and Height are the thumbnail's size (the original's when
	// Original).
	Width, Height int
}

// Plan returns the size of the thumbnail of a width×height image for the
// requested size and method, and the part of the original it shows.
// keep reports that the original is the answer as it is.
func Plan(width, height, reqW, reqH int, method string) (src image.Rectangle, w, h int, keep bool) {
	src = image.Rect(0, 0, width, height)
	if method == Crop {
		// The middle of the image in the requested aspect ratio.
		cw, ch := width, height
		if int64(width)*int64(reqH) > int64(height)*int64(reqW) {
			cw = int(math.Round(float64(height) * float64(reqW) / float64(reqH)))
		} else {
			ch = int(math.Round(float64(width) * float64(reqH) / float64(reqW)))
		}
		cw, ch = max(cw, 1), max(ch, 1)
		x0, y0 := (width-cw)/2, (height-ch)/2
		src = image.Rect(x0, y0, x0+cw, y0+ch)
		if cw <= reqW || ch <= reqH {
			// Smaller than asked: the crop as it is, never upscaled.
			return src, cw, ch, cw == width && ch == height
		}
		return src, reqW, reqH, false
	}
	// Scale: the smallest size at least as large as asked in both
	// dimensions, in the original's aspect ratio.
	f := math.Max(float64(reqW)/float64(width), float64(reqH)/float64(height))
	if f >= 1 {
		return src, width, height, true
	}
	w = min(width, int(math.Ceil(float64(width)*f)))
	h = min(height, int(math.Ceil(float64(height)*f)))
	return src, max(w, 1), max(h, 1), false
}

// Make makes a thumbnail of the image read from r for the requested size
// and method. It probes the header first and refuses, before decoding,
// anything Probe refuses.
func Make(r io.ReadSeeker, reqW, reqH int, method string, maxPixels int64) (Result, error) {
	if reqW < 1 || reqH < 1 {
		return Result{}, fmt.Errorf("thumbnail size %dx%d: must be positive", reqW, reqH)
	}
	info, err := Probe(r, maxPixels)
	if err != nil {
		return Result{}, err
	}
	src, w, h, keep := Plan(info.Width, info.Height, reqW, reqH, method)
	if keep {
		return Result{Original: true, ContentType: "image/" + info.Format, Width: info.Width, Height: info.Height}, nil
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("rewind image: %w", err)
	}
	img, err := decoders[info.Format].decode(r)
	if err != nil {
		return Result{}, fmt.Errorf("%w: decode %s: %v", ErrNotImage, info.Format, err)
	}
	// Decoders may give an image whose bounds do not start at 0,0.
	src = src.Add(img.Bounds().Min)
	// A large reduction is done in two steps: a box average to at least
	// twice the size, then Catmull-Rom, which keeps quality and costs
	// about a tenth of Catmull-Rom over the whole source.
	if k := min(src.Dx()/(2*w), src.Dy()/(2*h)); k >= 2 {
		shrunk := boxShrink(img, src, k)
		img, src = shrunk, shrunk.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, src, draw.Src, nil)
	var out bytes.Buffer
	res := Result{Width: w, Height: h}
	if info.Format == "jpeg" {
		res.ContentType = "image/jpeg"
		err = jpeg.Encode(&out, dst, &jpeg.Options{Quality: 85})
	} else {
		res.ContentType = "image/png"
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&out, dst)
	}
	if err != nil {
		return Result{}, fmt.Errorf("encode thumbnail: %w", err)
	}
	res.Data = out.Bytes()
	return res, nil
}
