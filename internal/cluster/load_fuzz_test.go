package cluster

import (
	"testing"
)

// FuzzParse feeds arbitrary documents to the spec decoder and validator: a
// user's YAML must give a spec or an error, never a panic, and whatever
// parses must validate and marshal.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nnodes: [{name: a, roles: [control-plane], ips: ['::1']}]\n"))
	f.Add([]byte("apiVersion: kubepki.dev/v1alpha1\nkind: Cluster\nvalidity: {ca: 1h, leaf: 2h}\nserviceCIDR: 10.0.0.0/31\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		_ = Validate(c)
		if _, err := Marshal(c); err != nil {
			t.Fatalf("parsed spec does not marshal: %v", err)
		}
	})
}
