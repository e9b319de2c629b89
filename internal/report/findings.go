package report

import (
	"fmt"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/resolve"
)

// Sources of findings.
const (
	SourceVerify = "verify"
	SourceExpiry = "expiry"
	// SourceLive: kubepki verify --live's checks of the running cluster.
	SourceLive = "live"
)

// findings are verify's findings (and warnings), each with its fix, and a
// warning for every certificate that expires within the window.
func findings(in Input, r *Report) []Finding {
	fx := fixer{m: in.Model, g: r.Graph, dir: shellQuote(r.Dir)}
	var out []Finding
	for _, s := range in.Statuses {
		switch s.State {
		case reconcile.Valid, reconcile.External, reconcile.Elsewhere:
			continue // verify counts none of these
		}
		for _, msg := range s.Findings {
			out = append(out, Finding{Source: SourceVerify, Subject: s.Path, Message: string(s.State) + ": " + msg, Fix: fx.fix(s, msg)})
		}
	}
	for _, p := range in.Permissions {
		f := Finding{Source: SourceVerify, Subject: p.Path, Message: p.Problem, Warning: p.Warning}
		switch {
		case p.Tighten:
			f.Fix = fx.run("init") + "   # tightens the mode"
		case p.Warning:
			f.Fix = "nothing required: the real tool writes it so"
		default:
			f.Fix = "as the message says, then " + fx.run("verify")
		}
		out = append(out, f)
	}
	for _, c := range r.Certificates {
		if c.State != Expiring {
			continue
		}
		f := Finding{Source: SourceExpiry, Subject: c.File, Warning: true,
			Message: fmt.Sprintf("expires %s (%s)", c.NotAfter.Format("2006-01-02 15:04 MST"), ExpiresIn(c.NotAfter, in.Now))}
		if c.CA {
			f.Fix = "rotate the CA before then (Kubernetes docs, \"Manual Rotation of CA Certificates\")"
		} else {
			f.Fix = fx.renew(c.Name)
		}
		out = append(out, f)
	}
	return out
}

// fixer says what to run for a finding.
type fixer struct {
	m   *resolve.Model
	g   Graph
	dir string
}

func (fx fixer) run(args string) string { return "kubepki " + args + " --dir " + fx.dir }

// renew renews a certificate (or a kubeconfig's) and names the components
// to restart after it.
func (fx fixer) renew(name string) string {
	if c := fx.cert(name); c != nil && c.CA != nil && c.CA.External() {
		return fmt.Sprintf("%s   # CA %s has no key here: have it signed, then kubepki certs install", fx.run("certs generate-csr "+name+" --csr-dir csr"), c.Spec.CA)
	}
	fix := fx.run("certs renew " + name)
	if r := fx.restart(name); r != "" {
		fix += "\nthen redistribute the nodes' files (kubepki bundle, kubepki distribute)\nand restart " + r
	}
	return fix
}

// cert is the plan's certificate of a certificate or kubeconfig name.
func (fx fixer) cert(name string) *resolve.Cert {
	if c, ok := fx.m.Cert(name); ok {
		return c
	}
	if k, ok := fx.m.Kubeconfig(name); ok {
		c, _ := fx.m.Cert(k.Spec.Cert)
		return c
	}
	return nil
}

// restart names the components that read a certificate, directly or
// through a kubeconfig that carries it: "kube-scheduler on server".
func (fx fixer) restart(name string) string {
	c := fx.cert(name)
	if c == nil {
		return ""
	}
	ids := []string{certID(c.Spec)}
	for _, e := range fx.g.Edges {
		if e.From == ids[0] && e.Kind == Embeds {
			ids = append(ids, e.To)
		}
	}
	var names []string
	for _, id := range ids {
		for _, u := range fx.g.Users(id) {
			names = append(names, u.Label+" "+u.Detail)
		}
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}

func (fx fixer) fix(s reconcile.Status, msg string) string {
	c := fx.cert(s.Name)
	leafExternal := c != nil && !s.IsCA && c.CA != nil && c.CA.External()
	switch s.State {
	case reconcile.Missing:
		if leafExternal {
			return fx.renew(s.Name)
		}
		return fx.run("init") + "   # creates what is missing, reusing a key that is there"
	case reconcile.Drifted:
		return fx.run("plan") + "   # shows the difference\n" + fx.run("init --apply-drift") + "   # reissues it from the spec"
	case reconcile.Expired:
		if s.IsCA {
			return "rotate the CA (Kubernetes docs, \"Manual Rotation of CA Certificates\"): every certificate it signed is reissued"
		}
		return fx.renew(s.Name)
	case reconcile.Unsafe:
		return fx.run("init") + "   # tightens what chmod fixes"
	}
	switch {
	case strings.Contains(msg, "not yet valid"):
		return "set this host's clock right (or wait until the certificate's NotBefore), then " + fx.run("verify")
	case s.IsCA:
		return "restore the CA's certificate and key from a backup (" + fx.dir + "/.backup/): every certificate depends on them"
	case s.Kind == reconcile.KindKeyPair:
		return "restore the key pair from a backup (" + fx.dir + "/.backup/); a new one invalidates every service-account token"
	case strings.Contains(msg, "does not match") || strings.Contains(msg, "missing"):
		return "# a new key pair replaces the one that does not match\n" + fx.renew(s.Name)
	case strings.Contains(msg, "not signed by"):
		return "it comes from another CA: move its certificate and key aside, then " + fx.run("init") + "   # issues a new pair from its CA"
	}
	return "kubepki inspect " + shellQuote(s.Path) + "   # shows what is there; restore it from a backup, or move it aside and " + fx.run("init")
}

// shellQuote quotes a path for a shell command line when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
