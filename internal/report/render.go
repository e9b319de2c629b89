package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var pageTemplate string

// page is what the template renders: the report and its drawings.
type page struct {
	*Report
	Graph    graphLayout
	Timeline timelineLayout
	States   []State
}

// HTML renders the report as one self-contained page: its CSS in the
// page, the graph and the timeline inline SVG, no script and nothing
// fetched when it is viewed. html/template escapes every name, path and
// message, whatever a certificate's subject holds.
func HTML(w io.Writer, r *Report) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"expiresIn": func(t time.Time) string { return ExpiresIn(t, r.Generated) },
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 MST")
		},
		"join": strings.Join,
		"f":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"add":  func(a, b float64) float64 { return a + b },
		"sub":  func(a, b float64) float64 { return a - b },
		"odd":  func(i int) bool { return i%2 == 1 },
		"days": func(d time.Duration) int { return int(d.Hours() / 24) },
	}).Parse(pageTemplate)
	if err != nil {
		return fmt.Errorf("report template: %w", err)
	}
	var buf bytes.Buffer
	p := page{Report: r, Graph: layoutGraph(r.Graph), Timeline: layoutTimeline(r.Certificates, r.Generated),
		States: []State{OK, Expiring, Expired, Flagged}}
	if err := t.Execute(&buf, p); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}
