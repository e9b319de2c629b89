// Package kubeconfig builds, reads and rewrites kubeconfig files through
// client-go's clientcmd, with certificates embedded, written 0600 and
// atomically.
package kubeconfig

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"

	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// Params are the contents of a single-context kubeconfig.
type Params struct {
	Cluster, User, Context, Server string
	// CA, Cert and Key are PEM data, embedded in the file.
	CA, Cert, Key []byte
}

// New returns a kubeconfig with one cluster, user and context, current.
func New(p Params) *api.Config {
	cfg := api.NewConfig()
	cfg.Clusters[p.Cluster] = &api.Cluster{Server: p.Server, CertificateAuthorityData: p.CA}
	cfg.AuthInfos[p.User] = &api.AuthInfo{ClientCertificateData: p.Cert, ClientKeyData: p.Key}
	cfg.Contexts[p.Context] = &api.Context{Cluster: p.Cluster, AuthInfo: p.User}
	cfg.CurrentContext = p.Context
	return cfg
}

// Create writes a new kubeconfig, 0600, refusing to overwrite.
func Create(path string, cfg *api.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return store.Create(path, data, store.KeyMode)
}

// Replace rewrites a kubeconfig atomically, 0600.
func Replace(path string, cfg *api.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return store.Replace(path, data, store.KeyMode)
}

// Load reads a kubeconfig file as clientcmd.LoadFromFile does, through
// a symbolic link as it does, but only from a regular file and never
// blocking (store.OpenRegular): a FIFO planted in its place is an error,
// not a hang.
func Load(path string) (*api.Config, error) {
	return Read(path, store.KeyPolicy{Insecure: true})
}

// Read reads a kubeconfig file with store.ReadFile and p, then does what
// clientcmd.LoadFromFile does after reading: decode, and set each
// cluster's, user's and context's LocationOfOrigin to path (which
// clientcmd.ResolveLocalPaths resolves relative file paths against).
func Read(path string, p store.KeyPolicy) (*api.Config, error) {
	data, err := store.ReadFile(path, p)
	if err != nil {
		return nil, err
	}
	return decode(path, data)
}

// decode is clientcmd.LoadFromFile after its os.ReadFile; an error names
// the file, as store.ReadFile's do.
func decode(path string, data []byte) (*api.Config, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, a := range cfg.AuthInfos {
		a.LocationOfOrigin = path
	}
	for _, c := range cfg.Clusters {
		c.LocationOfOrigin = path
	}
	for _, c := range cfg.Contexts {
		c.LocationOfOrigin = path
	}
	if cfg.AuthInfos == nil {
		cfg.AuthInfos = map[string]*api.AuthInfo{}
	}
	if cfg.Clusters == nil {
		cfg.Clusters = map[string]*api.Cluster{}
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]*api.Context{}
	}
	return cfg, nil
}

// Current returns the current context's cluster and user entries.
func Current(cfg *api.Config) (*api.Cluster, *api.AuthInfo, error) {
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, nil, fmt.Errorf("current context %q not found", cfg.CurrentContext)
	}
	cl, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return nil, nil, fmt.Errorf("cluster %q of context %q not found", ctx.Cluster, cfg.CurrentContext)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, nil, fmt.Errorf("user %q of context %q not found", ctx.AuthInfo, cfg.CurrentContext)
	}
	return cl, user, nil
}

// ErrNoClientCert says the current user authenticates some other way
// (token, exec plugin) or by files, not by embedded certificate data.
var ErrNoClientCert = errors.New("no embedded client certificate")

// ClientPair returns the current user's embedded client certificate and key.
func ClientPair(cfg *api.Config) (*x509.Certificate, crypto.Signer, error) {
	_, user, err := Current(cfg)
	if err != nil {
		return nil, nil, err
	}
	if len(user.ClientCertificateData) == 0 {
		return nil, nil, ErrNoClientCert
	}
	cert, err := pki.ParseCert(user.ClientCertificateData)
	if err != nil {
		return nil, nil, fmt.Errorf("client-certificate-data: %w", err)
	}
	if len(user.ClientKeyData) == 0 {
		return cert, nil, nil
	}
	key, err := pki.ParseKey(user.ClientKeyData)
	if err != nil {
		return nil, nil, fmt.Errorf("client-key-data: %w", err)
	}
	return cert, key, nil
}

// SetClientPair replaces the current user's certificate and key data and
// the current cluster's CA data, keeping everything else in the file.
func SetClientPair(cfg *api.Config, caPEM, certPEM, keyPEM []byte) error {
	cl, user, err := Current(cfg)
	if err != nil {
		return err
	}
	cl.CertificateAuthorityData = caPEM
	user.ClientCertificateData, user.ClientKeyData = certPEM, keyPEM
	return nil
}
