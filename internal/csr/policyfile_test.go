package csr

import (
	"context"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
)

const testPolicy = `apiVersion: kubepki.dev/v1alpha1
kind: ApprovalPolicy
rules:
- name: developers
  requesterGroups: [developers]
  commonNames: ["${requester}", "dev-*"]
  groups: ["developers", "team-*", "*"]
  maxDuration: 720h
- name: ci
  requesterUsers: [ci-bot]
  commonNames: ["ci-*"]
- name: break-glass
  requesterGroups: [security]
  commonNames: ["breakglass-*"]
  groups: ["system:masters"]
`

func mustPolicy(t *testing.T, s string) *ApprovalPolicy {
	t.Helper()
	p, err := ParseApprovalPolicy([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseApprovalPolicy(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	if len(p.Rules) != 3 || p.Rules[0].MaxDuration.Duration != 720*time.Hour || p.Rules[1].RequesterUsers[0] != "ci-bot" {
		t.Fatalf("parsed %+v", p)
	}
	tests := []struct {
		name, data, wantErr string
	}{
		{"empty is no rules", ``, ""},
		{"JSON", `{"rules":[{"name":"a","requesterUsers":["u"],"commonNames":["u"]}]}`, ""},
		{"unknown field", "rules:\n- name: a\n  requesterGroup: [x]\n  commonNames: [a]\n", `unknown field "requesterGroup"`},
		{"wrong kind", "kind: Policy\n", `kind is "Policy"`},
		{"wrong apiVersion", "apiVersion: v1\n", `apiVersion is "v1"`},
		{"no requester", "rules:\n- name: a\n  commonNames: [a]\n", "requesterGroups or requesterUsers is required"},
		{"no commonNames", "rules:\n- name: a\n  requesterUsers: [u]\n", "commonNames is required"},
		{"no name", "rules:\n- requesterUsers: [u]\n  commonNames: [a]\n", "name is required"},
		{"duplicate name", "rules:\n- {name: a, requesterUsers: [u], commonNames: [a]}\n- {name: a, requesterUsers: [u], commonNames: [a]}\n", "duplicate name"},
		{"bad glob", "rules:\n- {name: a, requesterUsers: [u], commonNames: ['[']}\n", "syntax error in pattern"},
		{"empty pattern", "rules:\n- {name: a, requesterUsers: [u], commonNames: ['']}\n", "empty pattern"},
		{"bad duration", "rules:\n- {name: a, requesterUsers: [u], commonNames: [a], maxDuration: 3 days}\n", "unknown unit"},
		{"negative duration", "rules:\n- {name: a, requesterUsers: [u], commonNames: [a], maxDuration: -1h}\n", "must not be negative"},
		{"numeric duration", "rules:\n- {name: a, requesterUsers: [u], commonNames: [a], maxDuration: 5}\n", "must be a string"},
		{"not YAML", "rules: [", "parse approval policy"},
		{"kubeletServing", "kubeletServing:\n  ipRanges: [192.0.2.0/24, 'fd00::/64', 198.51.100.7]\n  dnsSuffixes: [nodes.example.com]\n", ""},
		{"kubeletServing typo", "kubeletServing: {ipRange: [192.0.2.0/24]}\n", `unknown field "ipRange"`},
		{"kubeletServing bad CIDR", "kubeletServing: {ipRanges: [192.0.2.0/33]}\n", `kubeletServing.ipRanges: "192.0.2.0/33" is not a CIDR`},
		{"kubeletServing everything", "kubeletServing: {ipRanges: [0.0.0.0/0]}\n", "0.0.0.0/0 covers every address"},
		{"kubeletServing loopback", "kubeletServing: {ipRanges: [127.0.0.0/16]}\n", "127.0.0.0/16 lies inside 127.0.0.0/8"},
		{"kubeletServing Service domain", "kubeletServing: {dnsSuffixes: [svc.cluster.local]}\n", `DNS suffix "svc.cluster.local": the cluster's Service domain`},
		{"kubeletServing wildcard suffix", "kubeletServing: {dnsSuffixes: ['*.example.com']}\n", "not a DNS name"},
		{"too large", strings.Repeat("#", MaxPolicyBytes+1), "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseApprovalPolicy([]byte(tc.data))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestMatchName(t *testing.T) {
	tests := []struct {
		patterns  []string
		name, req string
		want      bool
	}{
		{[]string{"dev-*"}, "dev-jane", "jane", true},
		{[]string{"dev-*"}, "ops-jane", "jane", false},
		{[]string{"${requester}"}, "jane", "jane", true},
		{[]string{"${requester}"}, "john", "jane", false},
		{[]string{"*"}, "anything", "", true},
		// system: names need a literal entry.
		{[]string{"*"}, "system:masters", "", false},
		{[]string{"system:*"}, "system:masters", "", false},
		{[]string{"system:*"}, "system:nodes", "", false},
		{[]string{"system:masters"}, "system:masters", "", true},
		{[]string{"${requester}"}, "system:node:n1", "system:node:n1", false},
		{[]string{"system:node:*"}, "system:node:n1", "", false},
		{nil, "x", "x", false},
	}
	for _, tc := range tests {
		if got := matchName(tc.patterns, tc.name, tc.req); got != tc.want {
			t.Errorf("matchName(%q, %q, requester %q) = %v, want %v", tc.patterns, tc.name, tc.req, got, tc.want)
		}
	}
}

func TestPolicyPrivilegedGroupsExplicit(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	runPolicy(t, p.privilegedGroupsExplicit, []policyCase{
		{name: "ordinary groups", user: "jane", groups: []string{"developers"}, req: reqSpec{o: []string{"developers"}}},
		{name: "masters via glob", user: "jane", groups: []string{"developers"}, req: reqSpec{o: []string{MastersGroup}},
			want: `group system:masters is never auto-approved: no rule covering requester "jane" lists it explicitly`},
		{name: "nodes via glob", user: "jane", groups: []string{"developers"}, req: reqSpec{o: []string{"developers", NodesGroup}}, want: "group system:nodes is never auto-approved"},
		{name: "masters listed for security", user: "sam", groups: []string{"security"}, req: reqSpec{o: []string{MastersGroup}}},
		{name: "nodes not listed for security", user: "sam", groups: []string{"security"}, req: reqSpec{o: []string{NodesGroup}}, want: "system:nodes"},
	})
}

func TestPolicySubjectAllowed(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	runPolicy(t, p.subjectAllowed, []policyCase{
		{name: "own name", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane", o: []string{"developers"}}},
		{name: "dev- name, team group", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "dev-tool", o: []string{"team-a"}}},
		{name: "someone else's name", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "john"}, want: `CN "john" with groups [] is not allowed for requester "jane" by rules developers`},
		{name: "masters even via *", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane", o: []string{MastersGroup}}, want: "not allowed"},
		{name: "user rule", user: "ci-bot", groups: []string{"system:authenticated"}, req: reqSpec{cn: "ci-runner"}},
		{name: "user rule, no groups allowed", user: "ci-bot", req: reqSpec{cn: "ci-runner", o: []string{"x"}}, want: "by rules ci"},
		{name: "break glass", user: "sam", groups: []string{"security"}, req: reqSpec{cn: "breakglass-1", o: []string{MastersGroup}}},
		{name: "break glass, other CN", user: "sam", groups: []string{"security"}, req: reqSpec{cn: "sam", o: []string{MastersGroup}}, want: "not allowed"},
	})
}

func TestPolicyDurationWithinRule(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	runPolicy(t, p.durationWithinRule(24*time.Hour), []policyCase{
		{name: "unset", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane"}},
		{name: "global cap is lower than the rule's", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane"}, exp: seconds(48 * time.Hour), want: "more than the 24h0m0s limit of rule developers"},
		{name: "within", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane"}, exp: seconds(time.Hour)},
	})
	runPolicy(t, p.durationWithinRule(0), []policyCase{
		{name: "rule's cap", user: "jane", groups: []string{"developers"}, req: reqSpec{cn: "jane"}, exp: seconds(721 * time.Hour), want: "720h0m0s limit of rule developers"},
		{name: "rule without cap", user: "ci-bot", req: reqSpec{cn: "ci-x"}, exp: seconds(10000 * time.Hour)},
	})
}

func TestPolicyClientUsages(t *testing.T) {
	runPolicy(t, clientUsagesPolicy, []policyCase{
		{name: "client", usages: []certv1.KeyUsage{"digital signature", "key encipherment", "client auth"}},
		{name: "server", usages: []certv1.KeyUsage{"client auth", "server auth"}, want: `"server auth" is not allowed`},
		{name: "none", want: "needs the client auth usage"},
	})
}

func TestAPIServerClientChain(t *testing.T) {
	a, err := NewApprover(APIServerClientChain(mustPolicy(t, testPolicy), 0))
	if err != nil {
		t.Fatal(err)
	}
	client := []certv1.KeyUsage{"digital signature", "client auth"}
	tests := []struct {
		name    string
		user    string
		groups  []string
		req     reqSpec
		verdict Verdict
		policy  string
	}{
		{"developer for herself", "jane", []string{"developers"}, reqSpec{cn: "jane", o: []string{"developers"}}, Approve, ""},
		{"developer asks for system:masters", "jane", []string{"developers"}, reqSpec{cn: "jane", o: []string{MastersGroup}}, Deny, "privileged-groups-explicit"},
		{"developer asks for someone else", "jane", []string{"developers"}, reqSpec{cn: "admin"}, Deny, "subject-allowed"},
		{"developer asks for a CA", "jane", []string{"developers"}, reqSpec{cn: "jane", exts: []pkix.Extension{basicConstraintsExt(t, true)}}, Deny, "not-ca"},
		{"admin is left for a person", "admin", []string{MastersGroup}, reqSpec{cn: "jane"}, Ignore, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, pemData := newRequest(t, tc.req)
			c := csrObject("x", certv1.KubeAPIServerClientSignerName, tc.user, tc.groups, pemData, client...)
			d, err := a.Decide(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Policy != tc.policy {
				t.Fatalf("Decide = %v by %q (%s), want %v by %q", d.Verdict, d.Policy, d.Reason, tc.verdict, tc.policy)
			}
		})
	}
}
