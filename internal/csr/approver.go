package csr

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

	certv1 "k8s.io/api/certificates/v1"
)

// Policy is one named check of the approver's triage. Check returns ok, or
// a reason a person can act on ("IP SAN 10.0.0.9 is not an address of node
// node-a"). Checks are pure: whatever they need besides the CSR and its
// parsed request (a Node) is put in ctx by the chain's Prepare.
type Policy struct {
	Name  string
	Check func(ctx context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (ok bool, reason string)
}

// Chain is the approval policy for one kind of request: the signer it
// judges, whether it owns a given request, what it must look up first, and
// its policies in order. The first policy that fails denies the request with
// its reason; a request that passes them all is approved.
type Chain struct {
	// Name names the chain in conditions, logs and metrics.
	Name string
	// SignerName is the spec.signerName the chain judges.
	SignerName string
	// Owns reports whether the chain decides this request at all; when
	// it does not, the request is left for a person (or another approver)
	// and the reason says why. Nil owns every request for the signer.
	Owns func(c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (ok bool, reason string)
	// Prepare looks up what the policies need (the Node of a kubelet) and
	// returns a context carrying it. An error means "cannot decide now":
	// the request is retried, never denied for it. Nil needs nothing.
	Prepare func(ctx context.Context, c *certv1.CertificateSigningRequest, req *x509.CertificateRequest) (context.Context, error)
	// Policies run in order.
	Policies []Policy
}

// Verdict is what the approver does with a request.
type Verdict int

// The verdicts.
const (
	// Ignore leaves the request alone: not pending, no chain for its
	// signer, or the chain does not own it.
	Ignore Verdict = iota
	// Approve adds the Approved condition.
	Approve
	// Deny adds the Denied condition with the failing policy's reason.
	Deny
)

// String names the verdict as logs say it: approve, deny, ignore.
func (v Verdict) String() string {
	switch v {
	case Approve:
		return "approve"
	case Deny:
		return "deny"
	}
	return "ignore"
}

// Decision is the approver's verdict on one request and why.
type Decision struct {
	Verdict Verdict
	// Chain is the chain that decided ("" when none did).
	Chain string
	// Policy is the policy that denied the request ("" otherwise).
	Policy string
	// Reason explains the verdict to a person.
	Reason string
}

// Message is the text for the condition's message field.
func (d Decision) Message() string {
	if d.Policy != "" {
		return fmt.Sprintf("kubepki %s policy %s: %s", d.Chain, d.Policy, d.Reason)
	}
	return fmt.Sprintf("kubepki %s: %s", d.Chain, d.Reason)
}

// Approver runs chains of policies over pending requests.
type Approver struct {
	chains []Chain
}

// NewApprover returns an approver with the chains, at most one per signer.
func NewApprover(chains ...Chain) (*Approver, error) {
	seen := map[string]string{}
	for _, ch := range chains {
		if prev, ok := seen[ch.SignerName]; ok {
			return nil, fmt.Errorf("approver chains %s and %s both judge signer %s", prev, ch.Name, ch.SignerName)
		}
		seen[ch.SignerName] = ch.Name
	}
	return &Approver{chains: chains}, nil
}

// SignerNames lists the signers the approver has a chain for.
func (a *Approver) SignerNames() []string {
	out := make([]string, len(a.chains))
	for i, ch := range a.chains {
		out[i] = ch.SignerName
	}
	return out
}

// Decide triages a request: drop what is not its business (already decided
// or issued, a signer without a chain, a request the chain does not own),
// then run the chain's policies in order. An error means the facts could not
// be gathered (see Chain.Prepare) and the request should be retried.
func (a *Approver) Decide(ctx context.Context, c *certv1.CertificateSigningRequest) (Decision, error) {
	if Decided(c) || Issued(c) || Failed(c) {
		return Decision{Verdict: Ignore, Reason: "already " + strings.ToLower(State(c))}, nil
	}
	var chain *Chain
	for i := range a.chains {
		if a.chains[i].SignerName == c.Spec.SignerName {
			chain = &a.chains[i]
		}
	}
	if chain == nil {
		return Decision{Verdict: Ignore, Reason: "no approval policy for signer " + c.Spec.SignerName}, nil
	}
	req, err := ParseRequest(c.Spec.Request)
	if err != nil {
		return Decision{Verdict: Deny, Chain: chain.Name, Policy: "request-parses", Reason: err.Error()}, nil
	}
	if chain.Owns != nil {
		if ok, reason := chain.Owns(c, req); !ok {
			return Decision{Verdict: Ignore, Chain: chain.Name, Reason: reason}, nil
		}
	}
	if chain.Prepare != nil {
		ctx, err = chain.Prepare(ctx, c, req)
		if err != nil {
			return Decision{}, fmt.Errorf("%s policy for %s: %w", chain.Name, c.Name, err)
		}
	}
	for _, p := range chain.Policies {
		if ok, reason := p.Check(ctx, c, req); !ok {
			return Decision{Verdict: Deny, Chain: chain.Name, Policy: p.Name, Reason: reason}, nil
		}
	}
	return Decision{Verdict: Approve, Chain: chain.Name, Reason: fmt.Sprintf("all %d policies passed", len(chain.Policies))}, nil
}
