package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/wiring"
)

func newWiringCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		node   string
		root   string
		output string
	)
	var names []string
	for _, c := range wiring.Components() {
		names = append(names, string(c))
	}
	cmd := &cobra.Command{
		Use:   "wiring COMPONENT",
		Short: "Print the flags and config a component needs to use the PKI",
		Long: `Print the exact flags (and, for kubelet and kube-proxy, the config file) that a
component needs to use the PKI, with the paths 'kubepki bundle' installs.

Components: ` + strings.Join(names, ", ") + `.

Output formats:
  flags   one flag per line (default), ready for a systemd unit or xargs
  config  the component's config file only (kubelet, kube-proxy)
  yaml    flags, config path and config together; json likewise

--node defaults to the spec's only node (kubeadm's default: one control
plane that also runs the kubelet); with several nodes, to the first
control-plane node, or the first worker for kubelet and kube-proxy.

With an external etcd (etcd.external in the spec), kube-apiserver gets its
endpoints and the files the spec names, and etcd itself is not wired.

--root DIR prefixes every path, for a node tree written by
'kubepki bundle --out DIR' (DIR/<node>).`,
		Example: `  kubepki wiring kube-apiserver --dir ./pki
  kubepki wiring kubelet --node node-0 -o config > kubelet-config.yaml`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "flags", "text", "config", "yaml", "json":
			default:
				return usageError("unknown output format %q (want flags, config, yaml or json)", output)
			}
			if !slices.Contains(names, args[0]) {
				return usageError("unknown component %q (want one of %s)", args[0], strings.Join(names, ", "))
			}
			c, plan, err := f.load()
			if err != nil {
				return err
			}
			if node != "" && !slices.ContainsFunc(c.Nodes, func(n cluster.Node) bool { return n.Name == node }) {
				return usageError("--node %s: no such node in the spec", node)
			}
			st := f.store(e, plan.Profile)
			ca := resolve.Resolve(plan, st).CAs["ca"]
			external := ca != nil && ca.External()
			w, err := wiring.For(c, plan, wiring.Component(args[0]), node, wiring.Options{Root: root, ExternalCA: external})
			if err != nil {
				return err
			}
			switch output {
			case "flags", "text":
				for _, fl := range w.Flags {
					fmt.Fprintln(e.stdout, fl)
				}
				return nil
			case "config":
				if w.Config == "" {
					return usageError("%s has no config file; use -o flags", w.Component)
				}
				_, err := io.WriteString(e.stdout, w.Config)
				return err
			}
			return print(e.stdout, output, w, nil)
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringVar(&node, "node", "", "node the component runs on (default: the spec's only node; else the first control-plane node, or first worker for kubelet and kube-proxy)")
	cmd.Flags().StringVar(&root, "root", "", "prefix every path with this directory")
	cmd.Flags().StringVarP(&output, "output", "o", "flags", "output format: flags, config, yaml or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"flags", "config", "yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
