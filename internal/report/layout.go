package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The graph's geometry, in SVG user units (the SVG scales to the page).
const (
	graphWidth = 1280
	graphPad   = 8
	boxWidth   = 200
	boxHeight  = 40
	rowPitch   = 50
	graphTop   = 34
	// A label (detail) longer than labelFit (detailFit) runes is squeezed
	// into the box with SVG's textLength; one longer than labelMax
	// (detailMax) is cut.
	labelFit     = 23
	labelMax     = 36
	detailFit    = 30
	detailMax    = 40
	textWidthMax = boxWidth - 20
)

var columnTitles = [...]string{"CAs", "Certificates", "Kubeconfigs", "Components", "Nodes"}

// graphLayout is the trust graph placed on a canvas.
type graphLayout struct {
	Width, Height float64
	Columns       []columnTitle
	Boxes         []box
	Edges         []edgePath
}

type columnTitle struct {
	X     float64
	Title string
}

type box struct {
	X, Y, W, H float64
	Node       GraphNode
	// Label and Detail are the node's, shortened to fit the box.
	Label, Detail string
	// LabelWidth and DetailWidth, when set, squeeze a long text to fit.
	LabelWidth, DetailWidth float64
	// Tooltip is every note, one a line.
	Tooltip string
}

type edgePath struct {
	D     string
	State State
	Kind  EdgeKind
}

// layoutGraph places the nodes in their kind's column and orders each
// column to keep edges short and crossings few: a few sweeps of the
// barycenter heuristic (each node moves to the mean height of its
// neighbours in the columns before it, then after it), as layered graph
// drawing does (Sugiyama et al.).
func layoutGraph(g Graph) graphLayout {
	cols := make([][]int, len(columnTitles))
	for i, n := range g.Nodes {
		c := n.Kind.Column()
		cols[c] = append(cols[c], i)
	}
	rows := 0
	for _, c := range cols {
		rows = max(rows, len(c))
	}
	idx := map[string]int{}
	for i, n := range g.Nodes {
		idx[n.ID] = i
	}
	preds := make([][]int, len(g.Nodes))
	succs := make([][]int, len(g.Nodes))
	for _, e := range g.Edges {
		f, t := idx[e.From], idx[e.To]
		preds[t] = append(preds[t], f)
		succs[f] = append(succs[f], t)
	}
	y := make([]float64, len(g.Nodes))
	place := func(c int) {
		off := float64(rows-len(cols[c])) * rowPitch / 2
		for r, i := range cols[c] {
			y[i] = off + float64(r)*rowPitch
		}
	}
	for c := range cols {
		place(c)
	}
	order := func(c int, nbrs [][]int) {
		bary := map[int]float64{}
		for _, i := range cols[c] {
			bary[i] = y[i]
			if len(nbrs[i]) > 0 {
				sum := 0.0
				for _, j := range nbrs[i] {
					sum += y[j]
				}
				bary[i] = sum / float64(len(nbrs[i]))
			}
		}
		slices.SortStableFunc(cols[c], func(a, b int) int { return cmp.Compare(bary[a], bary[b]) })
		place(c)
	}
	for range 4 {
		for c := 1; c < len(cols); c++ {
			order(c, preds)
		}
		for c := len(cols) - 2; c >= 0; c-- {
			order(c, succs)
		}
	}
	for c := 1; c < len(cols); c++ {
		order(c, preds)
	}

	gap := float64(graphWidth-2*graphPad-len(cols)*boxWidth) / float64(len(cols)-1)
	colX := func(c int) float64 { return graphPad + float64(c)*(boxWidth+gap) }
	l := graphLayout{Width: graphWidth, Height: graphTop + float64(max(rows, 1))*rowPitch}
	for c, t := range columnTitles {
		l.Columns = append(l.Columns, columnTitle{X: colX(c) + boxWidth/2, Title: t})
	}
	for i, n := range g.Nodes {
		b := box{
			X: colX(n.Kind.Column()), Y: graphTop + y[i], W: boxWidth, H: boxHeight, Node: n,
			Label: shorten(n.Label, labelMax), Detail: shorten(n.Detail, detailMax),
			Tooltip: strings.Join(append([]string{n.Label}, n.Notes...), "\n"),
		}
		if len([]rune(b.Label)) > labelFit {
			b.LabelWidth = textWidthMax
		}
		if len([]rune(b.Detail)) > detailFit {
			b.DetailWidth = textWidthMax
		}
		l.Boxes = append(l.Boxes, b)
	}
	for _, e := range g.Edges {
		f, t := l.Boxes[idx[e.From]], l.Boxes[idx[e.To]]
		x1, y1 := f.X+f.W, f.Y+f.H/2
		x2, y2 := t.X, t.Y+t.H/2
		c := math.Max((x2-x1)/2, 20)
		l.Edges = append(l.Edges, edgePath{
			D:     fmt.Sprintf("M%.1f %.1fC%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, x1+c, y1, x2-c, y2, x2, y2),
			State: f.Node.State, Kind: e.Kind,
		})
	}
	// Edges from a troubled item last, so they are drawn over the rest.
	slices.SortStableFunc(l.Edges, func(a, b edgePath) int { return cmp.Compare(a.State.rank(), b.State.rank()) })
	return l
}

// shorten cuts s to n runes with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// The timeline's geometry.
const (
	timelineWidth = 1280
	tlLabelRight  = 212
	tlAxisLeft    = 224
	tlAxisRight   = 1060
	tlTextLeft    = 1072
	tlTop         = 30
	tlRow         = 24
	tlBar         = 12
)

// timelineLayout is the expiry timeline: one bar per certificate from
// NotBefore to NotAfter on one time axis, soonest expiry first.
type timelineLayout struct {
	Width, Height float64
	AxisLeft      float64
	AxisRight     float64
	Ticks         []tick
	NowX          float64
	NowLabel      string
	Rows          []timelineRow
}

type tick struct {
	X     float64
	Label string
}

type timelineRow struct {
	Y       float64
	Label   string
	X0, X1  float64
	State   State
	Clipped bool
	Text    string
	Tooltip string
}

// timelineRows are the certificates with dates, soonest expiry first.
func timelineRows(certs []Certificate) []Certificate {
	var out []Certificate
	for _, c := range certs {
		if !c.NotAfter.IsZero() {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Certificate) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// layoutTimeline places the bars. The axis runs from the earliest
// NotBefore to the latest NotAfter of the leaves (CAs usually live ten
// times longer; their bars run off the right end, marked so), and always
// shows now.
func layoutTimeline(certs []Certificate, now time.Time) timelineLayout {
	rows := timelineRows(certs)
	l := timelineLayout{Width: timelineWidth, AxisLeft: tlAxisLeft, AxisRight: tlAxisRight,
		Height: tlTop + float64(max(len(rows), 1))*tlRow + 8}
	if len(rows) == 0 {
		return l
	}
	start, end := now, now.Add(24*time.Hour)
	leaves := false
	for _, c := range rows {
		leaves = leaves || !c.CA
	}
	for _, c := range rows {
		if c.NotBefore.Before(start) && !c.NotBefore.IsZero() {
			start = c.NotBefore
		}
		if (!c.CA || !leaves) && c.NotAfter.After(end) {
			end = c.NotAfter
		}
	}
	span := end.Sub(start)
	start, end = start.Add(-span/50), end.Add(span/25)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(end.Sub(start))
		return tlAxisLeft + math.Max(0, math.Min(1, f))*(tlAxisRight-tlAxisLeft)
	}
	l.NowX, l.NowLabel = x(now), "now "+now.UTC().Format("2006-01-02")
	l.Ticks = ticks(start, end, x)
	for i, c := range rows {
		x0, x1 := x(c.NotBefore), x(c.NotAfter)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		l.Rows = append(l.Rows, timelineRow{
			Y: tlTop + float64(i)*tlRow, Label: shorten(c.Name, 30), X0: x0, X1: x1, State: c.State,
			Clipped: c.NotAfter.After(end),
			Text:    ExpiresIn(c.NotAfter, now),
			Tooltip: fmt.Sprintf("%s\n%s → %s", c.Name, c.NotBefore.Format("2006-01-02 15:04 MST"), c.NotAfter.Format("2006-01-02 15:04 MST")),
		})
	}
	return l
}

// ticks are the axis's labelled dates: days, months or years, whichever
// gives at most ten.
func ticks(start, end time.Time, x func(time.Time) float64) []tick {
	days := end.Sub(start).Hours() / 24
	type unit struct {
		months, days int
		format       string
	}
	units := []unit{{0, 1, "Jan 2"}, {0, 7, "Jan 2"}, {1, 0, "Jan 2006"}, {3, 0, "Jan 2006"}, {6, 0, "Jan 2006"}, {12, 0, "2006"}, {24, 0, "2006"}, {60, 0, "2006"}, {120, 0, "2006"}}
	u := units[len(units)-1]
	for _, c := range units {
		step := float64(c.days) + float64(c.months)*30.4
		if days/step <= 10 {
			u = c
			break
		}
	}
	s := start.UTC()
	var t time.Time
	if u.months > 0 {
		t = time.Date(s.Year(), s.Month(), 1, 0, 0, 0, 0, time.UTC)
		if u.months >= 12 {
			t = time.Date(s.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		}
	} else {
		t = time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC)
	}
	var out []tick
	for ; !t.After(end); t = t.AddDate(0, u.months, u.days) {
		if t.Before(start) {
			continue
		}
		out = append(out, tick{X: x(t), Label: t.Format(u.format)})
	}
	return out
}
