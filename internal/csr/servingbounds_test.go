package csr

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: []string{"192.0.2.0/24", " fd00::/64 "}, want: []string{"192.0.2.0/24", "fd00::/64"}},
		{in: []string{"192.0.2.7/24"}, want: []string{"192.0.2.0/24"}}, // masked, as kube-apiserver does
		{in: []string{"192.0.2.7", "fd00::1"}, want: []string{"192.0.2.7/32", "fd00::1/128"}},
		{in: []string{"::ffff:192.0.2.0/120"}, want: []string{"192.0.2.0/24"}},
		{in: []string{"", " "}, want: nil},
		{in: []string{"192.0.2.0/24", "nodes"}, wantErr: `"nodes" is not a CIDR`},
		{in: []string{"10.0.0.0/40"}, wantErr: "is not a CIDR"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.in, ","), func(t *testing.T) {
			got, err := ParsePrefixes(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Fatalf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestServingBoundsValidate(t *testing.T) {
	base := func() ServingBounds {
		return ServingBounds{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(DefaultServiceCIDR)}, ClusterDomain: "example.internal"}
	}
	tests := []struct {
		name    string
		ranges  []string
		suffix  []string
		wantErr string
	}{
		{name: "nothing declared"},
		{name: "node networks", ranges: []string{"192.0.2.0/24", "fd00::/64"}, suffix: []string{"nodes.example.com", "Cluster.Internal"}},
		{name: "range holding the service CIDR", ranges: []string{"10.0.0.0/8"}}, // allowed: service IPs are refused one by one
		{name: "every IPv4", ranges: []string{"0.0.0.0/0"}, wantErr: "0.0.0.0/0 covers every address"},
		{name: "every IPv6", ranges: []string{"::/0"}, wantErr: "::/0 covers every address"},
		{name: "inside the service CIDR", ranges: []string{"10.96.0.0/16"}, wantErr: "10.96.0.0/16 lies inside 10.96.0.0/12"},
		{name: "loopback", ranges: []string{"127.0.0.1/32"}, wantErr: "lies inside 127.0.0.0/8"},
		{name: "IPv6 loopback", ranges: []string{"::1"}, wantErr: "lies inside ::1/128"},
		{name: "svc", suffix: []string{"svc"}, wantErr: "Service domain"},
		{name: "a namespace's Services", suffix: []string{"default.svc"}, wantErr: "Service domain"},
		{name: "cluster domain", suffix: []string{"example.internal"}, wantErr: "Service domain"},
		{name: "under svc.DOMAIN", suffix: []string{"default.svc.example.internal"}, wantErr: "Service domain"},
		{name: "localhost", suffix: []string{"localhost"}, wantErr: "loopback"},
		{name: "wildcard", suffix: []string{"*.example.com"}, wantErr: "not a DNS name"},
		{name: "leading dot", suffix: []string{".example.com"}, wantErr: "not a DNS name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			var err error
			if b.IPRanges, err = ParsePrefixes(tc.ranges); err != nil {
				t.Fatal(err)
			}
			b.DNSSuffixes = tc.suffix
			err = b.Validate()
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

func TestKubeletServingRulesAddTo(t *testing.T) {
	b := ServingBounds{IPRanges: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, DNSSuffixes: []string{"a.example"}}
	r := &KubeletServingRules{IPRanges: []string{"198.51.100.0/24"}, DNSSuffixes: []string{"b.example"}}
	if err := r.AddTo(&b); err != nil {
		t.Fatal(err)
	}
	if len(b.IPRanges) != 2 || b.IPRanges[1].String() != "198.51.100.0/24" || !slices.Equal(b.DNSSuffixes, []string{"a.example", "b.example"}) {
		t.Fatalf("flags and file not added up: %+v", b)
	}
	var none *KubeletServingRules
	if err := none.AddTo(&b); err != nil || len(b.IPRanges) != 2 {
		t.Fatalf("nil rules changed the bounds: %v %+v", err, b)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":        "10.0.0.1",
		"::ffff:10.0.0.1": "10.0.0.1",
		"FD00:0:0::1":     "fd00::1",
		"Node-A.Example":  "node-a.example",
		"fe80::1%eth0":    "fe80::1",
		"*.cluster.local": "*.cluster.local",
		"not an address ": "not an address ",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
