package cli

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/bundle"
	"kubepki.dev/kubepki/internal/store"
)

func newBundleCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		nodes  []string
		out    string
		output string
	)
	cmd := &cobra.Command{
		Use:   "bundle --out DIR|FILE.tar.gz",
		Short: "Write each node's files, at the paths its components read them",
		Long: `Write, for every node (or those named by --node), exactly the files it needs at
the paths its components read them, with a manifest (kubepki-manifest.json) of
path, mode, owner and SHA-256.

--out DIR writes DIR/<node>/ as that node's "/" (DIR/node-0/var/lib/kubelet/…);
--out FILE.tar.gz writes one archive and needs exactly one --node.

A private key goes only to the node the plan gives it to: a node's own key
to that node, a CA key, the token-signing key and the control-plane
components' keys to control-plane nodes only, a user's key to none. Each key
(and each kubeconfig's client key) must match its certificate, which its CA
must have signed for the identity the plan names; a mismatched or swapped
pair on disk is an error naming the file, and nothing is written.

The tar.gz holds regular files only, no directory entries, so extracting it
with 'tar -xpzf FILE -C /' leaves the modes of existing directories (/etc,
/var/lib, /root, ...) alone.`,
		Example: `  kubepki bundle --dir ./pki --out ./bundles
  kubepki bundle --dir ./pki --node node-0 --out node-0.tar.gz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("--out is required")
			}
			_, plan, err := f.load()
			if err != nil {
				return err
			}
			st := f.store(e, plan.Profile)
			release, err := forBundle(e, st)
			if err != nil {
				return err
			}
			defer release()
			var all []string
			for _, b := range plan.Bundles {
				all = append(all, b.Node)
			}
			for _, n := range nodes {
				if !slices.Contains(all, n) {
					return usageError("--node %s: no such node in the plan (have: %s)", n, strings.Join(all, ", "))
				}
			}
			if len(nodes) == 0 {
				nodes = all
			}
			tarball := strings.HasSuffix(out, ".tar.gz") || strings.HasSuffix(out, ".tgz")
			if tarball && len(nodes) != 1 {
				return usageError("--out %s: a tar.gz holds one node; pass exactly one --node", out)
			}
			var bundles []*bundle.Bundle
			for _, n := range nodes {
				b, err := bundle.Collect(plan, st, n)
				if err != nil {
					return err
				}
				if tarball {
					var buf bytes.Buffer
					if err := b.WriteTarGz(&buf, e.now()); err != nil {
						return err
					}
					if err := store.Replace(out, buf.Bytes(), store.KeyMode); err != nil {
						return err
					}
				} else if err := b.WriteDir(filepath.Join(out, n)); err != nil {
					return err
				}
				bundles = append(bundles, b)
			}
			return print(e.stdout, output, bundles, func(w io.Writer) error {
				for _, b := range bundles {
					dest := filepath.Join(out, b.Node)
					if tarball {
						dest = out
					}
					fmt.Fprintf(w, "%s: %d files → %s\n", b.Node, len(b.Files), dest)
					for _, file := range b.Files {
						fmt.Fprintf(w, "  %04o %s %s\n", file.Mode.Perm(), file.Owner, file.Path)
					}
				}
				return nil
			})
		},
	}
	f.add(cmd, false)
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "node to bundle (repeatable; default every node)")
	cmd.Flags().StringVar(&out, "out", "", "output directory, or FILE.tar.gz for one node")
	addOutputFlag(cmd, &output)
	return cmd
}
