package lifecycle

import (
	"fmt"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/wiring"
)

// Restarts names the components ("kube-apiserver on server") that read one
// of the renewed certificates, found by matching the node bundles' install
// paths against each component's wiring: most components load their
// certificates only at start-up.
func Restarts(c *cluster.Cluster, plan *catalog.Plan, renewed []string) []string {
	var out []string
	for _, b := range plan.Bundles {
		var paths []string
		for _, f := range b.Files {
			name := f.Name
			if f.Kind == catalog.SourceKubeconfig {
				k, _ := plan.Kubeconfig(f.Name)
				name = k.Cert
			}
			if slices.Contains(renewed, name) && (f.Kind != catalog.SourcePublicKey) {
				paths = append(paths, f.Path)
			}
		}
		if len(paths) == 0 {
			continue
		}
		for _, comp := range wiring.Components() {
			w, err := wiring.For(c, plan, comp, b.Node, wiring.Options{})
			if err != nil {
				continue // the component does not run there
			}
			text := strings.Join(w.Flags, "\n") + "\n" + w.Config
			if slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(text, p) }) {
				out = append(out, fmt.Sprintf("%s on %s", comp, b.Node))
			}
		}
	}
	return out
}
