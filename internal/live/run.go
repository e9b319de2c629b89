package live

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/resolve"
)

// Config is one live check of a cluster against its PKI directory.
type Config struct {
	// Model is the plan resolved against the directory.
	Model *resolve.Model
	// Endpoints are what to probe (Endpoints).
	Endpoints []Endpoint
	// Kubeconfig is a kubeconfig file to check besides the plan's: its
	// identity, and its server as an API endpoint if not already probed.
	Kubeconfig string
	// Timeout bounds each probe and each kubeconfig's questions.
	Timeout time.Duration
	// Now is the clock for validity.
	Now time.Time
}

// Run probes every endpoint and asks the API server who every kubeconfig
// of the directory (and Config.Kubeconfig) is, at once.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	m := cfg.Model
	eps := slices.Clone(cfg.Endpoints)
	var xs []Expectation
	for _, k := range m.Kubeconfigs {
		if k.Err != nil || k.Elsewhere {
			continue // missing or unreadable: the offline verify reports it
		}
		xs = append(xs, Expect(m.Plan, k.Spec, k.Path))
	}
	if p := cfg.Kubeconfig; p != "" {
		kc, err := kubeconfig.Load(p) // a regular file, bounded: never a hang on a FIFO
		if err != nil {
			return nil, err
		}
		if e, ok := apiEndpoint(m, kc); ok && !slices.ContainsFunc(eps, func(o Endpoint) bool { return o.Addr == e.Addr }) {
			eps = append(eps, e)
		}
		abs, _ := filepath.Abs(p)
		if !slices.ContainsFunc(xs, func(x Expectation) bool { a, _ := filepath.Abs(x.Path); return a == abs }) {
			x := Expectation{Path: p}
			if k, ok := Match(m.Plan, p); ok {
				x = Expect(m.Plan, k, p)
			}
			x.Trusted = true // named by the user, as kubectl's --kubeconfig
			xs = append(xs, x)
		}
	}
	r := Check(ctx, eps, ModelFiles(m), Options{Timeout: cfg.Timeout, Now: cfg.Now})
	ids, findings, warnings := CheckKubeconfigs(ctx, xs, cfg.Timeout)
	r.Kubeconfigs = ids
	r.Findings = append(r.Findings, findings...)
	r.Warnings = append(r.Warnings, warnings...)
	return r, nil
}

// apiEndpoint is the API server a kubeconfig's current context talks to,
// as an endpoint that must serve the plan's API server certificate.
func apiEndpoint(m *resolve.Model, kc *api.Config) (Endpoint, bool) {
	ctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok {
		return Endpoint{}, false
	}
	cl, ok := kc.Clusters[ctx.Cluster]
	if !ok {
		return Endpoint{}, false
	}
	u, err := url.Parse(cl.Server)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return Endpoint{}, false
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	e := Endpoint{Component: APIServer, Addr: net.JoinHostPort(u.Hostname(), port)}
	if net.ParseIP(u.Hostname()) == nil {
		e.ServerName = u.Hostname()
	}
	if c, ok := m.Plan.APIServerCert(); ok {
		e.CA = c.CA
	}
	return e, true
}
