package preview

import (
	"bytes"
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
)

// OpenGraph is what a page says about itself: its og:* (and twitter:*)
// meta tags, with the page's <title> and description as fallbacks.
type OpenGraph struct {
	Title, Description, SiteName, Type string
	// Image is the image's absolute URL; "" when none.
	Image string
}

// maxOGText caps a title or description, as clients show a line or two.
const maxOGText = 500

// ParseOpenGraph reads the OpenGraph summary of an HTML page fetched from
// base (which resolves a relative image URL); contentType names its
// charset, if any.
func ParseOpenGraph(page []byte, contentType string, base *url.URL) OpenGraph {
	r, err := charset.NewReader(bytes.NewReader(page), contentType)
	if err != nil {
		r = bytes.NewReader(page)
	}
	z := html.NewTokenizer(r)
	meta := map[string]string{}
	var title string
	inTitle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return build(meta, title, base)
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "meta":
				var key, content string
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					switch strings.ToLower(string(k)) {
					case "property", "name":
						key = strings.ToLower(string(v))
					case "content":
						content = string(v)
					}
				}
				if key != "" && content != "" {
					if _, seen := meta[key]; !seen {
						meta[key] = content
					}
				}
			case "title":
				inTitle = title == ""
			case "body":
				// The head is over: meta tags live there.
				return build(meta, title, base)
			}
		case html.TextToken:
			if inTitle {
				title += string(z.Text())
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "title" {
				inTitle = false
			}
		}
	}
}

func build(meta map[string]string, title string, base *url.URL) OpenGraph {
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(meta[k]); v != "" {
				return clip(v)
			}
		}
		return ""
	}
	og := OpenGraph{
		Title:       first("og:title", "twitter:title"),
		Description: first("og:description", "twitter:description", "description"),
		SiteName:    first("og:site_name"),
		Type:        first("og:type"),
	}
	if og.Title == "" {
		og.Title = clip(strings.TrimSpace(title))
	}
	if img := first("og:image", "og:image:url", "og:image:secure_url", "twitter:image"); img != "" && base != nil {
		if u, err := base.Parse(img); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			og.Image = u.String()
		}
	}
	return og
}

// clip cuts s to maxOGText bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxOGText {
		return s
	}
	cut := maxOGText
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
