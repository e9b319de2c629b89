package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// specFlags are the flags every command that reads a plan shares.
type specFlags struct {
	config  string
	dir     string
	profile string
	keyAlg  string
	kcDir   string
	// fromCluster and kubeconfig: kubeadm's configuration read from the
	// cluster (kubeadm.go).
	fromCluster bool
	kubeconfig  string
	cmd         *cobra.Command
}

func (f *specFlags) add(cmd *cobra.Command, withKeyAlg bool) {
	f.cmd = cmd
	cmd.Flags().StringVar(&f.config, "config", "", "cluster spec, or kubeadm's ClusterConfiguration/InitConfiguration file (default: the profile's: 'kubepki config default' for hardway; for kubeadm, kubeadm's own: 10.96.0.0/12, this host's name and default-route address)")
	cmd.Flags().StringVar(&f.dir, "dir", "pki", "PKI directory, also spelled --cert-dir (default with a kubeadm configuration: its certificatesDir)")
	cmd.Flags().StringVar(&f.profile, "profile", "", "layout: hardway or kubeadm (default: kubeadm for a kubeadm configuration, else detected from --dir, else hardway)")
	cmd.Flags().BoolVar(&f.fromCluster, "from-cluster", false, "read kubeadm's ClusterConfiguration from the cluster's kube-system/kubeadm-config ConfigMap instead of --config")
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --from-cluster (default $KUBECONFIG or ~/.kube/config)")
	_ = cmd.RegisterFlagCompletionFunc("profile", cobra.FixedCompletions([]string{"hardway", "kubeadm"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	_ = cmd.MarkFlagDirname("dir")
	cmd.Flags().StringVar(&f.kcDir, "kubeconfig-dir", "", "directory of the kubeconfigs (default: --dir for hardway, its parent for kubeadm, as /etc/kubernetes holds /etc/kubernetes/pki)")
	_ = cmd.MarkFlagDirname("kubeconfig-dir")
	if withKeyAlg {
		var names []string
		for _, a := range pki.KeyAlgorithms() {
			names = append(names, string(a))
		}
		cmd.Flags().StringVar(&f.keyAlg, "key-algorithm", "", "key algorithm for new keys: "+strings.Join(names, ", ")+" (default: the spec's, ECDSA-P256)")
		_ = cmd.RegisterFlagCompletionFunc("key-algorithm", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
	}
}

// load reads and validates the spec and builds the plan for the profile.
func (f *specFlags) load() (*cluster.Cluster, *catalog.Plan, error) {
	c, name, profile, err := f.source()
	if err != nil {
		return nil, nil, err
	}
	if f.keyAlg != "" {
		alg, err := pki.ParseKeyAlgorithm(f.keyAlg)
		if err != nil {
			return nil, nil, usageError("--key-algorithm: %v", err)
		}
		c.KeyAlgorithm = string(alg)
	}
	if err := checkSpec(c, name); err != nil {
		return nil, nil, err
	}
	plan, err := catalog.New(c, profile)
	if err != nil {
		return nil, nil, err
	}
	return c, plan, nil
}

// checkSpec fails on the first error finding of a spec, named name.
func checkSpec(c *cluster.Cluster, name string) error {
	for _, fd := range catalog.Validate(c) {
		if fd.Severity == cluster.Error {
			return fmt.Errorf("%s: %s: %s (run 'kubepki config lint' for every finding)", name, fd.Field, fd.Message)
		}
	}
	return nil
}

// resolveProfile takes --profile, or recognises the layout of --dir by its
// API server certificate, or defaults to hardway.
func (f *specFlags) resolveProfile() (catalog.Profile, error) {
	if f.profile != "" {
		p, err := catalog.ParseProfile(f.profile)
		if err != nil {
			return "", usageError("--profile: %v", err)
		}
		return p, nil
	}
	st := store.Store{Dir: f.dir}
	switch {
	case store.Exists(st.CertPath("apiserver")) || store.Exists(st.CertPath("etcd/ca")):
		return catalog.Kubeadm, nil
	default:
		return catalog.Hardway, nil
	}
}

// store is the PKI directory of the plan's profile, read with the key
// policy of the global flags.
func (f *specFlags) store(e *env, p catalog.Profile) store.Store {
	st := store.Store{Dir: f.dir, KubeconfigDir: f.kcDir, Keys: e.keyPolicy()}
	if st.KubeconfigDir == "" {
		st.KubeconfigDir = p.KubeconfigDir(f.dir)
	}
	return st
}

// maxInput bounds what kubepki reads from one user-supplied file.
const maxInput = 16 << 20

// readInput reads a file, or stdin for "-", refusing anything over
// maxInput. A file named is opened as store.OpenRegular opens it (through
// links, as the user named it): a FIFO is refused, not waited on.
func readInput(e *env, path string) ([]byte, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, _, err := store.OpenRegular(path, store.KeyPolicy{Insecure: true})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("read %s: larger than %d MiB", path, maxInput>>20)
	}
	return data, nil
}

// readKey reads a private key file with the key policy of the global
// flags, or stdin for "-" (a pipe has no owner or mode to check).
func readKey(e *env, path string) ([]byte, error) {
	if path == "-" {
		return readInput(e, path)
	}
	return store.ReadKeyFile(path, e.keyPolicy())
}

// writeUserFile creates a file the user asked for, never overwriting one.
func writeUserFile(path string, data []byte) error {
	if err := store.Create(path, data, store.CertMode); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%s already exists; not overwriting it", path)
		}
		return err
	}
	return nil
}
