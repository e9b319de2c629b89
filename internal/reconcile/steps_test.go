package reconcile

import (
	"os"
	"testing"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/pkitest"
	"kubepki.dev/kubepki/internal/store"
)

// TestStepsApplyExecutes: what Steps (kubepki plan) lists is what Apply
// (kubepki init) does, and afterwards there is nothing left to do.
func TestStepsApplyExecutes(t *testing.T) {
	tests := []struct {
		name    string
		profile catalog.Profile
		// change breaks a PKI init made; want is the step it causes.
		change func(t *testing.T, st store.Store)
		id     string
		want   StepAction
		// after is the step's action once Apply ran.
		after StepAction
	}{
		{"0644 key", catalog.Hardway, func(t *testing.T, st store.Store) { mustChmod(t, st.KeyPath("admin"), 0o644) },
			"permissions/" + "KEY", ActTighten, ""},
		{"0755 key directory", catalog.Hardway, func(t *testing.T, st store.Store) { mustChmod(t, st.Dir, 0o755) },
			"permissions/" + "DIR", ActTighten, ""},
		{"missing certificate and its kubeconfig", catalog.Hardway, func(t *testing.T, st store.Store) {
			mustRemove(t, st.CertPath("admin"), st.KubeconfigPath("admin.kubeconfig"))
		},
			"cert/admin", ActCreate, ActKeep},
		{"real node's kubelet.conf", catalog.Kubeadm, func(t *testing.T, st store.Store) {
			mustRemove(t, st.KubeconfigPath("kubelet-node-0.conf"), st.KubeconfigPath("kubelet-node-1.conf"))
			if err := os.Rename(st.KubeconfigPath("kubelet-server.conf"), st.KubeconfigPath("kubelet.conf")); err != nil {
				t.Fatal(err)
			}
		}, "kubeconfig/kubelet-node-0.conf", ActElsewhere, ActElsewhere},
		{"external CA, missing leaf", catalog.Hardway, func(t *testing.T, st store.Store) {
			mustRemove(t, st.KeyPath("ca"), st.CertPath("admin"), st.KeyPath("admin"))
		}, "cert/admin", ActExternal, ActExternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := pkitest.Plan(t, tc.profile, nil)
			st, _ := pkitest.Store(t, tc.profile)
			mustApply(t, plan, st, testNow, Options{})
			tc.change(t, st)
			id := tc.id
			switch id {
			case "permissions/KEY":
				id = "permissions/" + st.KeyPath("admin")
			case "permissions/DIR":
				id = "permissions/" + st.Dir
			}
			step := func(steps []Step) (Step, bool) {
				for _, s := range steps {
					if string(s.Kind)+"/"+s.Name == id {
						return s, true
					}
				}
				return Step{}, false
			}
			if s, ok := step(Steps(plan, st, testNow, 0)); !ok || s.Action != tc.want {
				t.Fatalf("step %s: %q (found %v), want %q", id, s.Action, ok, tc.want)
			}
			var tightened []Tightened
			if _, err := Apply(t.Context(), plan, st, testNow, Options{OnTighten: func(x Tightened) { tightened = append(tightened, x) }}); err != nil {
				t.Fatal(err)
			}
			if (tc.want == ActTighten) != (len(tightened) == 1) {
				t.Errorf("Apply tightened %v", tightened)
			}
			after := Steps(plan, st, testNow, 0)
			s, ok := step(after)
			if tc.after == "" && ok || tc.after != "" && s.Action != tc.after {
				t.Errorf("after Apply, step %s: %q (found %v), want %q", id, s.Action, ok, tc.after)
			}
			for _, s := range after {
				if s.Todo() && !(tc.want == ActExternal && s.Action == ActExternal) {
					t.Errorf("after Apply, still to do: %s %s/%s %v", s.Action, s.Kind, s.Name, s.Findings)
				}
			}
		})
	}
}

func mustChmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
