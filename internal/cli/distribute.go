package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/bundle"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/distribute"
)

func newDistributeCmd(e *env) *cobra.Command {
	var (
		f          specFlags
		nodes      []string
		dryRun     bool
		knownHosts string
		identity   string
		timeout    time.Duration
		remoteRoot string
		output     string
	)
	cmd := &cobra.Command{
		Use:   "distribute",
		Short: "Install each node's files on it over SSH",
		Long: `Install on every node (or those named by --node) exactly the files of its bundle
(see 'kubepki bundle'), over SSH, at the paths its components read them.

Each node is reached at its spec's ssh.address (default: its first IP, port 22)
as ssh.user (default root). Its host key must be in --known-hosts: an unknown
host, or one whose key changed, is refused; there is no trust on first use.
Keys come from --identity (an unencrypted private key) and from the ssh-agent
at $SSH_AUTH_SOCK.

Every file is read back from the node and compared: an identical file (content,
mode and, when the SSH user is root, owner) is left alone; a new or different
one is written to a temporary file beside it, chowned, chmodded, synced and
renamed over it, so a reader never sees half a file. Directories are made as
needed, 0700 when they hold private keys. Last, the node's manifest (every
file's path, mode, owner and SHA-256) is installed at ` + distribute.ManifestPath + `.
Only POSIX sh commands run on the node (no sftp); --remote-root DIR writes
everything below DIR instead of "/" ({node} in DIR is the node's name).

--dry-run connects and compares, and writes nothing. Nodes are handled four at
a time; a node that fails does not stop the others.

Exit codes: 0 every node is up to date, 1 a node failed (or an error).`,
		Example: `  # add the nodes' host keys once, after checking them
  ssh-keyscan -p 22 192.168.10.100 >> ~/.ssh/known_hosts

  kubepki distribute --dir ./pki --dry-run
  kubepki distribute --dir ./pki --node node-0 --identity ~/.ssh/id_ed25519
  kubepki distribute --dir /etc/kubernetes/pki --profile kubeadm -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "json", "yaml":
			default:
				return usageError("unknown output format %q (want text, json or yaml)", output)
			}
			if timeout <= 0 {
				return usageError("--timeout must be positive")
			}
			if remoteRoot != "" && !filepath.IsAbs(remoteRoot) {
				return usageError("--remote-root %q: not an absolute path", remoteRoot)
			}
			c, plan, err := f.load()
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if !slices.ContainsFunc(c.Nodes, func(cn cluster.Node) bool { return cn.Name == n }) {
					return usageError("--node %s: no such node in the spec", n)
				}
			}
			st := f.store(e, plan.Profile)
			release, err := forBundle(e, st)
			if err != nil {
				return err
			}
			defer release()
			var jobs []distribute.Job
			for _, n := range c.Nodes {
				if len(nodes) > 0 && !slices.Contains(nodes, n.Name) {
					continue
				}
				target, err := distribute.TargetFor(n)
				if err != nil {
					return err
				}
				b, err := bundle.Collect(plan, st, n.Name)
				if err != nil {
					return err
				}
				jobs = append(jobs, distribute.Job{Target: target, Bundle: b})
			}
			if knownHosts == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("--known-hosts: no default: %w", err)
				}
				knownHosts = filepath.Join(home, ".ssh", "known_hosts")
			}
			kh, err := distribute.LoadKnownHosts(knownHosts)
			if err != nil {
				return err
			}
			creds, err := distribute.LoadCredentials(identity, os.Getenv("SSH_AUTH_SOCK"))
			if err != nil {
				return err
			}
			defer creds.Close()

			reports := distribute.PushAll(cmd.Context(), jobs, distribute.Options{
				HostKeyCallback:   kh.HostKeyCallback,
				HostKeyAlgorithms: kh.Algorithms,
				Auth:              creds.AuthMethods(),
				Timeout:           timeout,
				RemoteRoot:        remoteRoot,
				DryRun:            dryRun,
			})
			if err := print(e.stdout, output, reports, func(w io.Writer) error {
				return writeDistributeText(w, reports)
			}); err != nil {
				return err
			}
			failed := 0
			for _, r := range reports {
				if r.Error != "" {
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d node(s) failed", failed, len(reports))
			}
			return nil
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node to install (repeatable; default every node)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "connect and compare, write nothing")
	cmd.Flags().StringVar(&knownHosts, "known-hosts", "", "known_hosts file the nodes' host keys are checked against (default ~/.ssh/known_hosts)")
	cmd.Flags().StringVar(&identity, "identity", "", "unencrypted SSH private key file (besides the ssh-agent at $SSH_AUTH_SOCK)")
	cmd.Flags().DurationVar(&timeout, "timeout", distribute.DefaultTimeout, "time allowed to connect to one node (TCP, SSH handshake, authentication)")
	cmd.Flags().StringVar(&remoteRoot, "remote-root", "", "absolute directory on the nodes to install below instead of / ({node} is replaced by the node's name)")
	_ = cmd.MarkFlagFilename("known-hosts")
	_ = cmd.MarkFlagFilename("identity")
	addOutputFlag(cmd, &output)
	return cmd
}

// writeDistributeText writes one line per file and a summary line per node.
func writeDistributeText(w io.Writer, reports []distribute.Report) error {
	failed := 0
	for _, r := range reports {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, file := range r.Files {
			action := string(file.Action)
			if r.DryRun && file.Action != distribute.Unchanged {
				action = "would be " + action
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s", r.Node, action, file.Mode, file.Path)
			if file.Detail != "" {
				fmt.Fprintf(tw, "\t(%s)", file.Detail)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: note: %s\n", r.Node, n)
		}
		if r.Error != "" {
			failed++
			fmt.Fprintf(w, "%s (%s): %s\n", r.Node, r.Address, r.Error)
			continue
		}
		summary := fmt.Sprintf("%d created, %d updated, %d unchanged",
			r.Count(distribute.Created), r.Count(distribute.Updated), r.Count(distribute.Unchanged))
		if r.DryRun {
			summary = fmt.Sprintf("dry run, nothing written: %d to create, %d to update, %d unchanged",
				r.Count(distribute.Created), r.Count(distribute.Updated), r.Count(distribute.Unchanged))
		}
		where := r.Address
		if r.RemoteRoot != "" {
			where += ", remote root " + r.RemoteRoot
		}
		fmt.Fprintf(w, "%s (%s): %s\n", r.Node, where, summary)
	}
	if len(reports) > 1 {
		parts := []string{fmt.Sprintf("%d node(s) ok", len(reports)-failed)}
		if failed > 0 {
			parts = append(parts, fmt.Sprintf("%d failed", failed))
		}
		fmt.Fprintln(w, strings.Join(parts, ", "))
	}
	return nil
}
