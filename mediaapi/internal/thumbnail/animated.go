package thumbnail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"io"

	"golang.org/x/image/draw"
)

// gifFrames counts the frames of a GIF by walking its blocks, without
// decompressing any: the frames times the screen's pixels is what decoding
// it whole would allocate, checked before.
func gifFrames(r io.Reader) (int, error) {
	br := bufio.NewReader(r)
	var hdr [13]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, fmt.Errorf("gif header: %w", err)
	}
	skipTable := func(flags byte) error {
		if flags&0x80 == 0 {
			return nil
		}
		_, err := br.Discard(3 << ((flags & 7) + 1))
		return err
	}
	skipSubBlocks := func() error {
		for {
			n, err := br.ReadByte()
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			if _, err := br.Discard(int(n)); err != nil {
				return err
			}
		}
	}
	if err := skipTable(hdr[10]); err != nil {
		return 0, fmt.Errorf("gif colour table: %w", err)
	}
	frames := 0
	for {
		b, err := br.ReadByte()
		if err != nil {
			return frames, fmt.Errorf("gif block: %w", err)
		}
		switch b {
		case 0x21: // extension: label, then sub-blocks
			if _, err := br.ReadByte(); err != nil {
				return frames, err
			}
			if err := skipSubBlocks(); err != nil {
				return frames, err
			}
		case 0x2C: // image: descriptor, colour table, LZW code size, data
			var desc [9]byte
			if _, err := io.ReadFull(br, desc[:]); err != nil {
				return frames, err
			}
			if err := skipTable(desc[8]); err != nil {
				return frames, err
			}
			if _, err := br.ReadByte(); err != nil {
				return frames, err
			}
			if err := skipSubBlocks(); err != nil {
				return frames, err
			}
			frames++
		case 0x3B: // trailer
			return frames, nil
		default:
			return frames, fmt.Errorf("gif: unknown block 0x%02x", b)
		}
	}
}

// MakeAnimated makes an animated thumbnail (a GIF) of an animated GIF,
// frame by frame, as Make does a still one. Anything else (a still image,
// a GIF of one frame) gets Make's still thumbnail. A GIF whose frames
// hold more than maxPixels pixels in all is refused with
// ErrTooManyPixels before it is decoded.
func MakeAnimated(r io.ReadSeeker, reqW, reqH int, method string, maxPixels int64) (Result, error) {
	info, err := Probe(r, maxPixels)
	if err != nil {
		return Result{}, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("rewind image: %w", err)
	}
	if info.Format != "gif" {
		return Make(r, reqW, reqH, method, maxPixels)
	}
	frames, err := gifFrames(r)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrNotImage, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("rewind image: %w", err)
	}
	if frames < 2 {
		return Make(r, reqW, reqH, method, maxPixels)
	}
	if int64(frames)*int64(info.Width)*int64(info.Height) > maxPixels {
		return Result{}, fmt.Errorf("%w: %d frames of %dx%d", ErrTooManyPixels, frames, info.Width, info.Height)
	}
	src, w, h, keep := Plan(info.Width, info.Height, reqW, reqH, method)
	if keep {
		return Result{Original: true, ContentType: "image/gif", Width: info.Width, Height: info.Height}, nil
	}
	g, err := gif.DecodeAll(r)
	if err != nil {
		return Result{}, fmt.Errorf("%w: decode gif: %v", ErrNotImage, err)
	}
	out, err := scaleGIF(g, src, w, h)
	if err != nil {
		return Result{}, err
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, out); err != nil {
		return Result{}, fmt.Errorf("encode animated thumbnail: %w", err)
	}
	return Result{Data: buf.Bytes(), ContentType: "image/gif", Width: w, Height: h}, nil
}

// scaleGIF plays g's frames on a canvas (following each frame's disposal)
// and returns the part src of every picture scaled to w×h.
func scaleGIF(g *gif.GIF, src image.Rectangle, w, h int) (*gif.GIF, error) {
	if len(g.Image) == 0 {
		return nil, errors.New("gif without frames")
	}
	screen := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	canvas := image.NewRGBA(screen)
	// A transparent entry first, then the web-safe colours.
	pal := append(color.Palette{color.Transparent}, palette.WebSafe...)
	out := &gif.GIF{LoopCount: g.LoopCount, Config: image.Config{ColorModel: pal, Width: w, Height: h}}
	var saved *image.RGBA
	for i, frame := range g.Image {
		disposal := byte(0)
		if i < len(g.Disposal) {
			disposal = g.Disposal[i]
		}
		if disposal == gif.DisposalPrevious {
			saved = image.NewRGBA(screen)
			copy(saved.Pix, canvas.Pix)
		}
		draw.Draw(canvas, frame.Bounds(), frame, frame.Bounds().Min, draw.Over)
		scaled := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.CatmullRom.Scale(scaled, scaled.Bounds(), canvas, src, draw.Src, nil)
		p := image.NewPaletted(scaled.Bounds(), pal)
		draw.FloydSteinberg.Draw(p, p.Bounds(), scaled, image.Point{})
		out.Image = append(out.Image, p)
		delay := 10
		if i < len(g.Delay) {
			delay = g.Delay[i]
		}
		out.Delay = append(out.Delay, delay)
		// Each picture is whole: clear before the next.
		out.Disposal = append(out.Disposal, gif.DisposalBackground)
		switch disposal {
		case gif.DisposalBackground:
			draw.Draw(canvas, frame.Bounds(), image.Transparent, image.Point{}, draw.Src)
		case gif.DisposalPrevious:
			canvas = saved
		}
	}
	return out, nil
}
