package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/duration"
)

// kubeadm's names for where its configuration lives in a cluster.
const (
	kubeadmConfigNamespace = "kube-system"
	kubeadmConfigMap       = "kubeadm-config"
	kubeadmConfigKey       = "ClusterConfiguration"
)

// source reads the spec the flags name and the profile it is for: a kubepki
// spec or kubeadm's configuration (--config), kubeadm's configuration in the
// live cluster (--from-cluster), or else the profile's own default — the
// hard way's topology, or what `kubeadm init` makes on this host. kubeadm's
// certificatesDir becomes the PKI directory unless --dir (--cert-dir) is
// given.
func (f *specFlags) source() (*cluster.Cluster, string, catalog.Profile, error) {
	var (
		kc   *cluster.KubeadmConfig
		name = f.config
	)
	switch {
	case f.fromCluster && f.config != "":
		return nil, "", "", usageError("--config and --from-cluster: give one source of the spec")
	case f.fromCluster:
		data, from, err := f.clusterConfig()
		if err != nil {
			return nil, "", "", err
		}
		name = from
		if kc, err = cluster.ParseKubeadm(data, name, cluster.LocalHost()); err != nil {
			return nil, "", "", err
		}
	case f.config != "":
		data, err := os.ReadFile(f.config)
		if err != nil {
			return nil, "", "", err
		}
		if !cluster.IsKubeadmConfig(data) {
			c, err := cluster.Parse(data, f.config)
			if err != nil {
				return nil, "", "", err
			}
			p, err := f.resolveProfile()
			return c, name, p, err
		}
		if kc, err = cluster.ParseKubeadm(data, f.config, cluster.LocalHost()); err != nil {
			return nil, "", "", err
		}
	}
	if kc != nil {
		if !f.dirGiven() {
			f.dir = kc.CertificatesDir
		}
		p := catalog.Kubeadm
		if f.profile != "" {
			var err error
			if p, err = f.resolveProfile(); err != nil {
				return nil, "", "", err
			}
		}
		return kc.Cluster, name, p, nil
	}
	p, err := f.resolveProfile()
	if err != nil {
		return nil, "", "", err
	}
	if inferred, err := f.adopted(p); err != nil {
		return nil, "", "", err
	} else if inferred != nil {
		return inferred, "spec inferred from " + f.dir, p, nil
	}
	c, name := defaultSpec(p)
	return c, name, p, nil
}

// defaultSpec is a profile's spec when none is given: kubeadm's own
// defaults for this host, or the embedded default of the hard way.
func defaultSpec(p catalog.Profile) (*cluster.Cluster, string) {
	if p == catalog.Kubeadm {
		return cluster.KubeadmDefault(cluster.LocalHost()), "kubeadm's defaults for this host (--config overrides them)"
	}
	return cluster.Default(), "embedded default"
}

// dirGiven reports whether the PKI directory was named on the command line
// (--dir or its alias --cert-dir).
func (f *specFlags) dirGiven() bool {
	return f.cmd != nil && f.cmd.Flags().Changed("dir")
}

// clusterConfig reads the ClusterConfiguration kubeadm keeps in the
// kube-system/kubeadm-config ConfigMap, through the kubeconfig kubectl
// would use.
func (f *specFlags) clusterConfig() ([]byte, string, error) {
	ctx := context.Background()
	if f.cmd != nil && f.cmd.Context() != nil {
		ctx = f.cmd.Context()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := clientset(f.kubeconfig)
	if err != nil {
		return nil, "", err
	}
	name := kubeadmConfigNamespace + "/" + kubeadmConfigMap
	cm, err := cs.CoreV1().ConfigMaps(kubeadmConfigNamespace).Get(ctx, kubeadmConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("ConfigMap %s not found: not a kubeadm cluster, or one set up without 'kubeadm init' (give its configuration to --config instead)", name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read ConfigMap %s: %w", name, err)
	}
	data, ok := cm.Data[kubeadmConfigKey]
	if !ok {
		return nil, "", fmt.Errorf("ConfigMap %s has no key %s", name, kubeadmConfigKey)
	}
	return []byte(data), "ConfigMap " + name, nil
}

// kubeadmWords makes every command take kubeadm users' words: --cert-dir
// wherever there is a --dir, and days ("365d") in every duration flag.
func kubeadmWords(c *cobra.Command) {
	for _, sub := range c.Commands() {
		kubeadmWords(sub)
	}
	duration.AcceptDays(c.Flags())
	duration.AcceptDays(c.PersistentFlags())
	if c.Flags().Lookup("dir") != nil && c.Flags().Lookup("cert-dir") == nil {
		c.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
			if name == "cert-dir" {
				name = "dir"
			}
			return pflag.NormalizedName(name)
		})
	}
}

// kubeadmHints name the kubepki way of what a kubeadm flag does, for the
// flags kubepki spells differently or does not have.
var kubeadmHints = map[string]string{
	"csr-only":                    "kubepki writes keys and CSRs for an external CA with 'kubepki certs generate-csr all|NAME... --csr-dir DIR', and installs the signed certificates with 'kubepki certs install'",
	"csr-dir":                     "--csr-dir belongs to 'kubepki certs generate-csr' and 'kubepki certs install'",
	"certificate-key":             "kubepki uploads no certificates to the cluster; copy a control plane's files to another with 'kubepki bundle' or 'kubepki distribute'",
	"kubeconfig-dir":              "--kubeconfig-dir belongs to the commands that read a plan (init, plan, verify, kubeconfig, certs renew, certs check-expiration, …)",
	"apiserver-cert-extra-sans":   "set apiServer.extraSANs in the spec, or apiServer.certSANs in a kubeadm ClusterConfiguration given to --config",
	"service-cidr":                "set serviceCIDR in the spec, or networking.serviceSubnet in a kubeadm ClusterConfiguration given to --config",
	"service-dns-domain":          "set dnsDomain in the spec, or networking.dnsDomain in a kubeadm ClusterConfiguration given to --config",
	"apiserver-advertise-address": "set the control-plane node's ips in the spec, or localAPIEndpoint.advertiseAddress in a kubeadm InitConfiguration given to --config",
	"apiserver-bind-port":         "set the port of apiServer.endpoint in the spec, or localAPIEndpoint.bindPort in a kubeadm InitConfiguration given to --config",
	"control-plane-endpoint":      "set apiServer.endpoint in the spec, or controlPlaneEndpoint in a kubeadm ClusterConfiguration given to --config",
	"node-name":                   "set the node's name in the spec (nodes[].name), or nodeRegistration.name in a kubeadm InitConfiguration given to --config",
}

var unknownFlag = regexp.MustCompile(`^unknown flag: --([^ =]+)`)

// flagError is a usage error (exit 2), with a hint when the flag is
// kubeadm's.
func flagError(cmd *cobra.Command, err error) error {
	if m := unknownFlag.FindStringSubmatch(err.Error()); m != nil {
		if hint, ok := kubeadmHints[m[1]]; ok && cmd.Flags().Lookup(m[1]) == nil {
			return usageError("%v (kubeadm's flag; %s)", err, hint)
		}
	}
	return usageError("%v", err)
}
