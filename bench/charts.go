package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// writeCharts renders p99.png and one latency-over-time chart per fault
// scenario; it returns chart file names by key ("p99" or scenario name).
func writeCharts(r *Report, dir string) (map[string]string, error) {
	out := make(map[string]string)
	if len(r.Scenarios) == 0 {
		return out, nil
	}
	if err := p99Chart(r, filepath.Join(dir, "p99.png")); err != nil {
		return nil, fmt.Errorf("bench: p99 chart: %w", err)
	}
	out["p99"] = "p99.png"
	for _, s := range r.Scenarios {
		if !s.Fault {
			continue
		}
		name := "timeline-" + s.Name + ".png"
		if err := timelineChart(s, filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("bench: %s chart: %w", s.Name, err)
		}
		out[s.Name] = name
	}
	return out, nil
}

func policyNames(r *Report) []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range r.Scenarios {
		for _, res := range s.Results {
			if !seen[res.Policy] {
				seen[res.Policy] = true
				names = append(names, res.Policy)
			}
		}
	}
	return names
}

// logFloor is the bottom of the log-scale axes, in ms.
const logFloor = 0.1

// p99Chart draws p99 per policy per scenario as grouped bars on a log
// scale (a hung backend's 1s tail and a 5ms baseline on one axis).
func p99Chart(r *Report, path string) error {
	p := plot.New()
	p.Title.Text = "p99 latency per scenario (ms, log scale; lower is better)"
	p.Y.Label.Text = "p99 (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = logFloor
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	var labels []string
	for _, s := range r.Scenarios {
		labels = append(labels, s.Name)
	}
	pols := policyNames(r)
	const barW = vg.Length(7)
	maxV := 1.0
	for j, pol := range pols {
		vals := make([]float64, len(r.Scenarios))
		for i, s := range r.Scenarios {
			for _, res := range s.Results {
				if res.Policy == pol {
					vals[i] = res.P99
				}
			}
			maxV = math.Max(maxV, vals[i])
		}
		bars := &logBars{
			values: vals,
			width:  barW,
			offset: barW * vg.Length(float64(j)-float64(len(pols)-1)/2),
			color:  plotutil.Color(j),
		}
		p.Add(bars)
		p.Legend.Add(pol, bars)
	}
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(maxV*1.5)))
	p.NominalX(labels...)
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = draw.XRight
	return p.Save(vg.Length(max(8, 1.1*float64(len(labels))))*vg.Inch, 5*vg.Inch, path)
}

// timelineChart draws each policy's p99 per bucket over the run, with
// the scenario's events as vertical lines.
func timelineChart(s ScenarioResult, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: p99 per bucket over time (ms, log scale)", s.Title)
	p.X.Label.Text = "seconds since measurement start"
	p.Y.Label.Text = "p99 (ms)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	minV, maxV, maxT := math.Inf(1), 1.0, 0.0
	for j, res := range s.Results {
		var xys plotter.XYs
		for _, b := range res.Timeline {
			if b.N == 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: b.T, Y: math.Max(b.P99, logFloor)})
			maxV = math.Max(maxV, b.P99)
			minV = math.Min(minV, math.Max(b.P99, logFloor))
			maxT = math.Max(maxT, b.T)
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(j)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(j)
		p.Add(l)
		p.Legend.Add(res.Policy, l)
	}
	p.Y.Min = 1
	if !math.IsInf(minV, 1) {
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(minV)))
	}
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(maxV*1.5)))
	p.X.Min = 0
	p.X.Max = maxT + 0.25
	var lx plotter.XYLabels
	for _, m := range s.Markers {
		l, err := plotter.NewLine(plotter.XYs{{X: m.T, Y: p.Y.Min}, {X: m.T, Y: p.Y.Max}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 120}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		// Labels at the bottom: the legend sits at the top.
		lx.XYs = append(lx.XYs, plotter.XY{X: m.T, Y: p.Y.Min * 1.15})
		lx.Labels = append(lx.Labels, " "+m.Label)
	}
	if len(lx.XYs) > 0 {
		labels, err := plotter.NewLabels(lx)
		if err != nil {
			return err
		}
		p.Add(labels)
	}
	return p.Save(9*vg.Inch, 4.5*vg.Inch, path)
}

// logBars is a bar chart whose bars rise from the bottom of the axis
// rather than from 0, which a log scale cannot show.
type logBars struct {
	values []float64
	width  vg.Length
	offset vg.Length
	color  color.Color
}

func (b *logBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.values {
		if v <= 0 {
			continue
		}
		x := trX(float64(i))
		if !c.ContainsX(x) {
			continue
		}
		x0 := x - b.width/2 + b.offset
		y0 := trY(math.Max(plt.Y.Min, logFloor))
		y1 := trY(math.Min(math.Max(v, plt.Y.Min), plt.Y.Max))
		pts := []vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x0 + b.width, Y: y1}, {X: x0 + b.width, Y: y0}}
		c.FillPolygon(b.color, c.ClipPolygonY(pts))
	}
}

func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, v := range b.values {
		if v > 0 {
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	if math.IsInf(ymin, 1) {
		ymin, ymax = 1, 1
	}
	return 0, float64(len(b.values) - 1), math.Max(ymin, logFloor), ymax
}

func (b *logBars) GlyphBoxes(plt *plot.Plot) []plot.GlyphBox {
	boxes := make([]plot.GlyphBox, len(b.values))
	for i := range b.values {
		boxes[i].X = plt.X.Norm(float64(i))
		boxes[i].Rectangle = vg.Rectangle{
			Min: vg.Point{X: b.offset - b.width/2},
			Max: vg.Point{X: b.offset + b.width/2},
		}
	}
	return boxes
}

func (b *logBars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(b.color, c.ClipPolygonY(pts))
}
