package csr

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	"sigs.k8s.io/yaml"
)

// Policy file identity.
const (
	PolicyAPIVersion = "kubepki.dev/v1alpha1"
	PolicyKind       = "ApprovalPolicy"
	// MaxPolicyBytes bounds a policy file; a real one is a few KiB.
	MaxPolicyBytes = 1 << 20
	// RequesterPattern, as a whole commonNames entry, matches the
	// requester's own user name: people renewing their own certificate.
	RequesterPattern = "${requester}"
)

// ApprovalPolicy says which kube-apiserver client certificates
// (kubernetes.io/kube-apiserver-client) the approver may approve, per
// requester, and within which bounds kubelet serving certificates are
// approved (KubeletServingRules):
//
//	apiVersion: kubepki.dev/v1alpha1
//	kind: ApprovalPolicy
//	kubeletServing:
//	  ipRanges: [192.0.2.0/24]
//	  dnsSuffixes: [nodes.example.com]
//	rules:
//	- name: developers
//	  requesterGroups: [developers]   # who may ask (spec.groups / spec.username)
//	  commonNames: ["${requester}", "dev-*"]
//	  groups: ["developers", "team-*"]
//	  maxDuration: 720h
//
// Patterns are path.Match globs, except that a name beginning "system:"
// (system:masters, system:nodes, system:node:NAME, service accounts) is only
// ever matched by an entry that spells it out: "*" or "system:*" never
// reaches it, and neither does ${requester}. So system:masters and
// system:nodes are never auto-approved unless the policy says so explicitly.
type ApprovalPolicy struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// KubeletServing adds to the controller's kubelet serving bounds.
	KubeletServing *KubeletServingRules `json:"kubeletServing,omitempty"`
	Rules          []ClientRule         `json:"rules"`
}

// ClientRule is one entry of an ApprovalPolicy.
type ClientRule struct {
	// Name identifies the rule in reasons and logs.
	Name string `json:"name"`
	// RequesterGroups and RequesterUsers say whose requests the rule
	// covers: a requester in any of the groups, or with any of the names.
	RequesterGroups []string `json:"requesterGroups,omitempty"`
	RequesterUsers  []string `json:"requesterUsers,omitempty"`
	// CommonNames are the CNs (user names) the requester may ask for.
	CommonNames []string `json:"commonNames"`
	// Groups are the O values (groups) the requester may ask for; every
	// O of the request must match one. Empty allows no group.
	Groups []string `json:"groups,omitempty"`
	// MaxDuration caps spec.expirationSeconds ("720h"); empty defers to
	// the controller's --max-duration.
	MaxDuration Duration `json:"maxDuration,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("720h").
type Duration struct{ time.Duration }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"720h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// ParseApprovalPolicy reads and validates a policy file (YAML or JSON).
// Unknown fields are errors: a misspelt "requesterGroup" must not silently
// become a rule that covers nobody, or everybody.
func ParseApprovalPolicy(data []byte) (*ApprovalPolicy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fmt.Errorf("policy is %d bytes, more than the %d allowed", len(data), MaxPolicyBytes)
	}
	var p ApprovalPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("parse approval policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks a policy's shape.
func (p *ApprovalPolicy) Validate() error {
	if p.APIVersion != "" && p.APIVersion != PolicyAPIVersion {
		return fmt.Errorf("approval policy: apiVersion is %q, want %s", p.APIVersion, PolicyAPIVersion)
	}
	if p.Kind != "" && p.Kind != PolicyKind {
		return fmt.Errorf("approval policy: kind is %q, want %s", p.Kind, PolicyKind)
	}
	var errs []error
	if ks := p.KubeletServing; ks != nil {
		var b ServingBounds
		if err := ks.AddTo(&b); err != nil {
			errs = append(errs, fmt.Errorf("approval policy: %w", err))
		}
		b.ClusterDomain = DefaultClusterDomain
		if err := b.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("approval policy: kubeletServing: %w", err))
		}
	}
	names := map[string]bool{}
	for i, r := range p.Rules {
		at := fmt.Sprintf("approval policy: rules[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", at))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name %q", at, r.Name))
		}
		names[r.Name] = true
		if len(r.RequesterGroups) == 0 && len(r.RequesterUsers) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): requesterGroups or requesterUsers is required", at, r.Name))
		}
		if len(r.CommonNames) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): commonNames is required", at, r.Name))
		}
		for _, field := range [][]string{r.CommonNames, r.Groups} {
			for _, pat := range field {
				if pat == "" {
					errs = append(errs, fmt.Errorf("%s (%s): empty pattern", at, r.Name))
				} else if _, err := path.Match(pat, ""); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): pattern %q: %w", at, r.Name, pat, err))
				}
			}
		}
		if r.MaxDuration.Duration < 0 {
			errs = append(errs, fmt.Errorf("%s (%s): maxDuration must not be negative", at, r.Name))
		}
	}
	return errors.Join(errs...)
}

// covers reports whether the rule covers the requester.
func (r *ClientRule) covers(c *certv1.CertificateSigningRequest) bool {
	if slices.Contains(r.RequesterUsers, c.Spec.Username) {
		return true
	}
	for _, g := range c.Spec.Groups {
		if slices.Contains(r.RequesterGroups, g) {
			return true
		}
	}
	return false
}

// matchName reports whether name matches one of the patterns; see
// ApprovalPolicy for the rules.
func matchName(patterns []string, name, requester string) bool {
	for _, pat := range patterns {
		if pat == name {
			return true
		}
		if strings.HasPrefix(name, "system:") {
			continue // only a literal entry reaches system: names
		}
		if pat == RequesterPattern {
			if name == requester {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// rulesFor returns the rules covering the request's requester.
func (p *ApprovalPolicy) rulesFor(c *certv1.CertificateSigningRequest) []*ClientRule {
	var out []*ClientRule
	for i := range p.Rules {
		if p.Rules[i].covers(c) {
			out = append(out, &p.Rules[i])
		}
	}
	return out
}

// allows reports whether the rule allows the request's subject.
func (r *ClientRule) allows(c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) bool {
	if !matchName(r.CommonNames, req.Subject.CommonName, c.Spec.Username) {
		return false
	}
	for _, o := range req.Subject.Organization {
		if !matchName(r.Groups, o, c.Spec.Username) {
			return false
		}
	}
	return true
}

// APIServerClientChain approves kube-apiserver client certificates
// (kubernetes.io/kube-apiserver-client) that a rule of the policy allows.
// Requests from requesters no rule covers are left for a person (as in the
// Kubernetes docs' user flow, where an admin approves with kubectl certificate approve); requests
// from covered requesters that no rule allows are denied.
func APIServerClientChain(p *ApprovalPolicy, maxDuration time.Duration) Chain {
	return Chain{
		Name:       "kube-apiserver-client",
		SignerName: certv1.KubeAPIServerClientSignerName,
		Owns: func(c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
			if len(p.rulesFor(c)) == 0 {
				return false, fmt.Sprintf("no rule of the approval policy covers requester %q (groups %s); left for a person", c.Spec.Username, orNone(c.Spec.Groups))
			}
			return true, ""
		},
		Policies: []Policy{
			{"client-usages", clientUsagesPolicy},
			{"no-sans", noSANsPolicy},
			{"not-ca", notCA},
			{"privileged-groups-explicit", p.privilegedGroupsExplicit},
			{"subject-allowed", p.subjectAllowed},
			{"duration-within-limit", p.durationWithinRule(maxDuration)},
		},
	}
}

func clientUsagesPolicy(_ context.Context, c *certv1.CertificateSigningRequest, _ *x509.CertificateRequest) (bool, string) {
	if err := ClientUsages(c.Spec.Usages); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// privilegedGroupsExplicit: system:masters (cluster-admin that cannot be
// revoked) and system:nodes (a node's identity) only when a rule covering
// the requester lists the group literally.
func (p *ApprovalPolicy) privilegedGroupsExplicit(_ context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	for _, g := range []string{MastersGroup, NodesGroup} {
		if !slices.Contains(req.Subject.Organization, g) {
			continue
		}
		explicit := slices.ContainsFunc(p.rulesFor(c), func(r *ClientRule) bool { return slices.Contains(r.Groups, g) })
		if !explicit {
			return false, fmt.Sprintf("group %s is never auto-approved: no rule covering requester %q lists it explicitly", g, c.Spec.Username)
		}
	}
	return true, ""
}

// subjectAllowed: one rule covering the requester allows both the CN and
// every group asked for.
func (p *ApprovalPolicy) subjectAllowed(_ context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
	rules := p.rulesFor(c)
	for _, r := range rules {
		if r.allows(c, req) {
			return true, ""
		}
	}
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return false, fmt.Sprintf("CN %q with groups [%s] is not allowed for requester %q by rules %s",
		req.Subject.CommonName, strings.Join(req.Subject.Organization, ", "), c.Spec.Username, strings.Join(names, ", "))
}

// durationWithinRule: spec.expirationSeconds is within the maxDuration of
// a rule that allows the subject (or within max when that rule sets none).
func (p *ApprovalPolicy) durationWithinRule(max time.Duration) func(context.Context, *certv1.CertificateSigningRequest, *x509.CertificateRequest) (bool, string) {
	return func(ctx context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (bool, string) {
		var reason string
		for _, r := range p.rulesFor(c) {
			if !r.allows(c, req) {
				continue
			}
			limit := max
			if r.MaxDuration.Duration > 0 && (limit <= 0 || r.MaxDuration.Duration < limit) {
				limit = r.MaxDuration.Duration
			}
			ok, why := durationWithin(limit)(ctx, c, req)
			if ok {
				return true, ""
			}
			reason = why + " of rule " + r.Name
		}
		return false, reason
	}
}
