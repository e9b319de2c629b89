package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/live"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

const liveHelp = `Live (--live): files on disk are not what a cluster runs on. A component that
was not restarted, or a node whose bundle was not redistributed after a
renewal, keeps serving the old certificate. --live adds:
  - a TLS handshake with every component endpoint of the spec: kube-apiserver
    (each control-plane node, and the spec's endpoint), etcd client 2379 and
    peer 2380, the kubelet 10250 on each node, kube-scheduler 10259 and
    kube-controller-manager 10257 on 127.0.0.1 (run it on the control-plane
    node, or give --endpoint). What each serves is compared with its file:
    serial, expiry, SANs, and that a CA of the CA file (a trust bundle may
    hold several) signs it. Served other than the file: a finding naming the
    component to restart and the bundle to redistribute ('restart:' lists
    them per node). An endpoint that does not answer is a warning; a
    scheduler or controller manager with no --tls-cert-file serves a
    certificate it makes in memory: information, nothing to compare.
  - for every kubeconfig of the directory (and --kubeconfig), a client made
    from the file itself asks the API server who it is (SelfSubjectReview)
    and whether its component may do what it needs (SelfSubjectAccessReview:
    the scheduler and controller manager update their Lease, a node gets its
    Node, kube-proxy lists EndpointSlices, an admin anything). Another user
    or groups than the plan's, a missing permission, or system:masters in a
    kubeconfig other than admin/super-admin is a finding. A kubeconfig the
    plan does not have is matched by its user entry, else only reported.
Probes run at once, each bounded by --timeout. When nothing answers at all (no
endpoint, no kubeconfig), verify exits 1: the cluster was not checked.`

// liveFlags are verify's --live flags.
type liveFlags struct {
	live      bool
	endpoints []string
	timeout   time.Duration
}

func (lf *liveFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&lf.live, "live", false, "also check the running cluster: what each component serves, who each kubeconfig is")
	cmd.Flags().StringArrayVar(&lf.endpoints, "endpoint", nil, "with --live: probe COMPONENT[@NODE] at HOST:PORT instead of its default (repeatable; components: "+strings.Join(live.EndpointComponents(), ", ")+")")
	cmd.Flags().DurationVar(&lf.timeout, "timeout", live.DefaultTimeout, "with --live: bound of each probe and each kubeconfig's questions")
	// verify's --kubeconfig also serves --live.
	if fl := cmd.Flags().Lookup("kubeconfig"); fl != nil {
		fl.Usage = "with --live: a kubeconfig to check besides the directory's, whose API server is probed too; with --from-cluster: where kubeadm's configuration is read (default $KUBECONFIG or ~/.kube/config)"
	}
}

// parse checks the --live flags before any work: a bad value is a usage
// error.
func (lf *liveFlags) parse(cmd *cobra.Command) ([]live.Override, error) {
	if !lf.live {
		for _, name := range []string{"endpoint", "timeout"} {
			if cmd.Flags().Changed(name) {
				return nil, usageError("--%s needs --live", name)
			}
		}
		return nil, nil
	}
	if lf.timeout <= 0 {
		return nil, usageError("--timeout %s: want a positive duration", lf.timeout)
	}
	var out []live.Override
	for _, s := range lf.endpoints {
		o, err := live.ParseOverride(s)
		if err != nil {
			return nil, usageError("%v", err)
		}
		out = append(out, o)
	}
	return out, nil
}

// checkLive runs the live checks of a directory.
func checkLive(ctx context.Context, e *env, c *cluster.Cluster, plan *catalog.Plan, st store.Store, kubeconfig string, overrides []live.Override, timeout time.Duration) (*live.Result, error) {
	eps, err := live.Endpoints(c, plan, overrides)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if kubeconfig != "" && !store.Exists(kubeconfig) {
		return nil, fmt.Errorf("--kubeconfig %s: no such file", kubeconfig)
	}
	return live.Run(ctx, live.Config{
		Model: resolve.Resolve(plan, st), Endpoints: eps, Kubeconfig: kubeconfig,
		Timeout: timeout, Now: e.now(),
	})
}

// writeLiveText prints the live part of verify: findings, then warnings,
// information, who each kubeconfig is, and what to restart where.
func writeLiveText(w io.Writer, r *live.Result) {
	for _, f := range r.Findings {
		fmt.Fprintln(w, "live: "+f.String())
	}
	for _, f := range r.Warnings {
		fmt.Fprintln(w, "warning: live: "+f.String())
	}
	for _, f := range r.Info {
		fmt.Fprintln(w, "info: live: "+f.String())
	}
	for _, id := range r.Kubeconfigs {
		if id.Error != "" {
			continue // a warning already
		}
		plan := "not in the plan"
		if id.Kubeconfig != "" {
			plan = "plan: " + id.Kubeconfig
		}
		fmt.Fprintf(w, "kubeconfig %s (%s): authenticates as %s, groups %s\n", id.Path, plan, id.AuthUser, strings.Join(id.AuthGroups, ","))
	}
	for _, rs := range r.Restart {
		fmt.Fprintf(w, "restart: %s: %s\n", rs.Node, strings.Join(rs.Components, ", "))
	}
}
