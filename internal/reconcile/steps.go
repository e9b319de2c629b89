package reconcile

import (
	"fmt"
	"time"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// StepAction is what a step does.
type StepAction string

// The actions of a plan's steps. init (Apply) does create and tighten;
// init --apply-drift reissue; kubepki certs renew renew; the rest are a
// person's or nothing.
const (
	// ActCreate: missing, init creates it.
	ActCreate StepAction = "create"
	// ActKeep: present and valid.
	ActKeep StepAction = "keep"
	// ActReissue: drifted from the spec; init --apply-drift reissues it.
	ActReissue StepAction = "reissue"
	// ActRenew: expired or expiring within the window: kubepki certs renew.
	ActRenew StepAction = "renew"
	// ActTighten: a mode chmod fixes; init does.
	ActTighten StepAction = "tighten"
	// ActFix: invalid, or a file kubepki will not read: needs a person.
	ActFix StepAction = "fix"
	// ActExternal: a CA without its key, or a missing certificate it must
	// sign: it comes from outside (certs generate-csr, install).
	ActExternal StepAction = "external"
	// ActElsewhere: another node's kubelet kubeconfig, on that node.
	ActElsewhere StepAction = "elsewhere"
)

// Step is one item of the plan with what is done about it.
type Step struct {
	Status
	Action StepAction `json:"action"`
}

// Todo reports whether the step is work: anything but keep, another
// node's file, or a CA whose key is elsewhere by design.
func (s Step) Todo() bool {
	switch s.Action {
	case ActKeep, ActElsewhere:
		return false
	case ActExternal:
		return !s.IsCA
	}
	return true
}

// Steps is the plan of work for a directory: one step per item of the
// plan in Examine's order, then one per unsafe file mode (Permissions).
// kubepki plan prints it and Apply executes it, so plan shows what init
// does. A valid certificate that expires within renewWithin is a renew
// step (0: never).
func Steps(plan *catalog.Plan, st store.Store, now time.Time, renewWithin time.Duration) []Step {
	audit := st
	audit.Keys = store.KeyPolicy{Insecure: true}
	m := resolve.Resolve(plan, audit)
	items := planItems(m)
	var out []Step
	for i, s := range examine(m, now) {
		step := Step{Status: s, Action: action(s, now, renewWithin)}
		if step.Action == ActCreate {
			if c, ok := externalItem(m, items[i]); ok {
				step.Action = ActExternal
				step.Findings = append(step.Findings, fmt.Sprintf("CA %s has no key here (external CA): kubepki certs generate-csr %s --csr-dir DIR, have it signed, then kubepki certs install", c.Spec.CA, c.Spec.Name))
			}
		}
		out = append(out, step)
	}
	for _, p := range Permissions(plan, st) {
		if p.Warning {
			continue
		}
		a := ActFix
		if p.Tighten {
			a = ActTighten
		}
		out = append(out, Step{Status: Status{Name: p.Path, Kind: KindPermissions, Path: p.Path, State: Unsafe, Findings: []string{p.Problem}}, Action: a})
	}
	return out
}

// action is the step for an item's state.
func action(s Status, now time.Time, window time.Duration) StepAction {
	switch s.State {
	case Missing:
		return ActCreate
	case Drifted:
		return ActReissue
	case Expired:
		return ActRenew
	case Invalid:
		return ActFix
	case External:
		return ActExternal
	case Elsewhere:
		return ActElsewhere
	}
	if window > 0 && !s.NotAfter.IsZero() && s.NotAfter.Sub(now) < window {
		return ActRenew
	}
	return ActKeep
}

// externalItem returns the certificate of a missing item that init would
// have to issue with a CA whose key is absent. A kubeconfig that carries a
// copy of a certificate on disk is made without the CA's key.
func externalItem(m *resolve.Model, it item) (*resolve.Cert, bool) {
	var c *resolve.Cert
	switch {
	case it.cert != nil:
		c = it.cert
	case it.kubeconfig != nil:
		c, _ = m.Cert(it.kubeconfig.Spec.Cert)
		if c == nil || (c.Kubeconfig != it.kubeconfig && store.Exists(c.Location.Path())) {
			return nil, false
		}
	default:
		return nil, false
	}
	if c.Spec.Profile.IsCA || c.CA == nil || !c.CA.External() {
		return nil, false
	}
	return c, true
}
