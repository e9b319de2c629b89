package controller

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"kubepki.dev/kubepki/internal/csr"
)

// TestCheckNamespace: a Lease namespace that does not exist is one error
// naming the flag; one the requester may not read, or an API server that
// does not answer, is not (the elector copes).
func TestCheckNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}}
	refuse := func(err error) *interceptor.Funcs {
		return &interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return err
		}}
	}
	tests := []struct {
		name, ns string
		funcs    *interceptor.Funcs
		wantErr  string
	}{
		{name: "exists", ns: "kube-system"},
		{name: "missing", ns: "kubepki-system", wantErr: `leader election: namespace "kubepki-system" does not exist: create it or set --leader-election-namespace`},
		{name: "forbidden", ns: "kubepki-system", funcs: refuse(apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "kubepki-system", errors.New("no")))},
		{name: "unreachable", ns: "kubepki-system", funcs: refuse(errors.New("connection refused"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(t, tc.funcs, ns)
			err := checkNamespace(context.Background(), c, tc.ns, slog.New(slog.DiscardHandler))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestNodeAddressKeys: the index holds each address once, in the form
// the approver looks SANs up by.
func TestNodeAddressKeys(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "10.0.0.1"},
		{Type: corev1.NodeHostName, Address: "Node-A"},
		{Type: corev1.NodeInternalDNS, Address: "node-a"},
		{Type: corev1.NodeExternalIP, Address: "::ffff:203.0.113.7"},
		{Type: corev1.NodeInternalIP, Address: "FD00::0:1"},
	}}}
	if got, want := nodeAddressKeys(n), []string{"10.0.0.1", "node-a", "203.0.113.7", "fd00::1"}; !slices.Equal(got, want) {
		t.Fatalf("nodeAddressKeys = %v, want %v", got, want)
	}
	if got := nodeAddressKeys(&corev1.Namespace{}); got != nil {
		t.Fatalf("a non-Node indexed as %v", got)
	}
}

// TestRunRefuses: bounds and namespace problems stop Run before it
// connects to anything.
func TestRunRefuses(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no Lease namespace", Options{Approve: true, LeaderElection: true}, "leader election needs the Lease's namespace: set --leader-election-namespace"},
		// The policy file's ranges are judged with the flags' service CIDR.
		{"policy range inside the service CIDR", Options{Approve: true,
			ClientPolicy:   &csr.ApprovalPolicy{KubeletServing: &csr.KubeletServingRules{IPRanges: []string{"10.96.1.0/24"}}},
			KubeletServing: csr.ServingBounds{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}},
			"kubelet serving IP range 10.96.1.0/24 lies inside 10.96.0.0/12"},
		{"bad policy range", Options{Approve: true, ClientPolicy: &csr.ApprovalPolicy{KubeletServing: &csr.KubeletServingRules{IPRanges: []string{"x"}}}},
			`approval policy: kubeletServing.ipRanges: "x" is not a CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), nil, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
