package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strings"
)

// The chart is drawn here with image/png alone: a few lines, a grid, a
// bitmap font. A plotting module would need the network at build time for
// no real gain.

var palette = []color.RGBA{
	{0, 0, 0, 255},       // ceiling: black
	{214, 39, 40, 255},   // red
	{31, 119, 180, 255},  // blue
	{44, 160, 44, 255},   // green
	{255, 127, 14, 255},  // orange
	{148, 103, 189, 255}, // purple
	{140, 86, 75, 255},   // brown
	{227, 119, 194, 255}, // pink
	{23, 190, 207, 255},  // cyan
}

type canvas struct{ img *image.RGBA }

func (c canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

// line draws a line width pixels thick (Bresenham with a square pen).
func (c canvas) line(x0, y0, x1, y1, width int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for {
		for i := -(width / 2); i <= (width-1)/2; i++ {
			for j := -(width / 2); j <= (width-1)/2; j++ {
				c.set(x0+i, y0+j, col)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * err; e2 >= dy {
			err += dy
			x0 += sx
		} else if e2 <= dx {
			err += dx
			y0 += sy
		} else {
			err += dy
			x0 += sx
		}
	}
}

func (c canvas) rect(x0, y0, x1, y1 int, col color.RGBA) {
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			c.set(x, y, col)
		}
	}
}

// text draws s with its top-left corner at (x, y), scale pixels per dot,
// and returns its width.
func (c canvas) text(x, y, scale int, s string, col color.RGBA) int {
	for i, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['-']
		}
		for row := range 7 {
			for bit := range 5 {
				if g[row]&(1<<(4-bit)) != 0 {
					c.rect(x+(i*6+bit)*scale, y+row*scale, x+(i*6+bit+1)*scale-1, y+(row+1)*scale-1, col)
				}
			}
		}
	}
	return textWidth(s, scale)
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// niceStep picks a grid step of 1, 2 or 5 times a power of ten.
func niceStep(span float64, lines int) float64 {
	raw := span / float64(lines)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

type point struct{ x, y float64 }

// curve is one configuration's captured rate against the offered rate:
// the median of each step's trials, saturation included.
func curve(r result) []point {
	var pts []point
	add := func(s step) {
		if len(s.Trials) == 0 {
			return
		}
		pts = append(pts, point{
			median(collect(s.Trials, func(t trial) float64 { return t.OfferedPPS })),
			median(collect(s.Trials, func(t trial) float64 { return t.CapturedPPS })),
		})
	}
	for _, s := range r.Search {
		add(s)
	}
	add(r.Saturation)
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	return append([]point{{0, 0}}, pts...)
}

// writeChart draws one panel per frame length, side by side.
func writeChart(path string, rep *report, sizes []int) error {
	const panelW, panelH, legendH = 640, 480, 30
	img := image.NewRGBA(image.Rect(0, 0, panelW*len(sizes), panelH+legendH*((len(rep.Configs)+2)/3)))
	c := canvas{img}
	c.rect(0, 0, img.Rect.Dx()-1, img.Rect.Dy()-1, color.RGBA{255, 255, 255, 255})
	colors := map[string]color.RGBA{}
	for i, cfg := range rep.Configs {
		colors[cfg.Name] = palette[i%len(palette)]
	}
	for i, size := range sizes {
		drawPanel(c, i*panelW, panelW, panelH, rep, size, colors)
	}
	// Legend under the panels, three entries per row.
	for i, cfg := range rep.Configs {
		x := 20 + (i%3)*((panelW*len(sizes)-40)/3)
		y := panelH + 8 + (i/3)*legendH
		c.rect(x, y+5, x+30, y+8, colors[cfg.Name])
		c.text(x+40, y, 2, cfg.Name, color.RGBA{0, 0, 0, 255})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawPanel(c canvas, x0, w, h int, rep *report, size int, colors map[string]color.RGBA) {
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{225, 225, 225, 255}
	left, right, top, bottom := x0+80, x0+w-20, 50, h-60
	var maxV float64
	for _, r := range rep.Results {
		if r.FrameLen == size {
			for _, p := range curve(r) {
				maxV = max(maxV, p.x, p.y)
			}
		}
	}
	if maxV == 0 {
		maxV = 1e5
	}
	stepV := niceStep(maxV, 5)
	maxV = math.Ceil(maxV/stepV) * stepV
	px := func(v float64) int { return left + int(v/maxV*float64(right-left)) }
	py := func(v float64) int { return bottom - int(v/maxV*float64(bottom-top)) }
	title := fmt.Sprintf("%d-byte frames: captured vs offered (kpps)", size)
	c.text(x0+(w-textWidth(title, 2))/2, 8, 2, title, black)
	for v := 0.0; v <= maxV+stepV/2; v += stepV {
		c.line(px(v), top, px(v), bottom, 1, grey)
		c.line(left, py(v), right, py(v), 1, grey)
		label := fmt.Sprintf("%.0f", v/1e3)
		c.text(px(v)-textWidth(label, 1)/2, bottom+8, 1, label, black)
		c.text(left-8-textWidth(label, 1), py(v)-3, 1, label, black)
	}
	c.line(left, bottom, right, bottom, 2, black)
	c.line(left, top, left, bottom, 2, black)
	c.text(x0+(w-textWidth("offered", 2))/2, bottom+28, 2, "offered", black)
	c.text(x0+8, top-16, 1, "captured", black)
	// The diagonal: everything offered was captured.
	c.line(px(0), py(0), px(maxV), py(maxV), 1, color.RGBA{180, 180, 180, 255})
	for _, r := range rep.Results {
		if r.FrameLen != size || r.Error != "" {
			continue
		}
		pts := curve(r)
		col := colors[r.Config]
		for i := 1; i < len(pts); i++ {
			c.line(px(pts[i-1].x), py(pts[i-1].y), px(pts[i].x), py(pts[i].y), 2, col)
		}
		for _, p := range pts[1:] {
			c.rect(px(p.x)-2, py(p.y)-2, px(p.x)+2, py(p.y)+2, col)
		}
	}
}
