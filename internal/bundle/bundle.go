// Package bundle turns a plan's per-node file lists into real files: read
// from the PKI directory, checked (no CA private key ever leaves the
// control plane), and written out as a directory tree or a tar.gz, each
// with a manifest of path, mode, owner and SHA-256.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/cluster"
	"kubepki.dev/kubepki/internal/store"
)

// ManifestName is the manifest's file name at the root of every bundle.
const ManifestName = "kubepki-manifest.json"

// File is one file of a bundle, with its content.
type File struct {
	Path   string      `json:"path"`
	Mode   os.FileMode `json:"-"`
	Owner  string      `json:"owner"`
	SHA256 string      `json:"sha256"`
	Size   int         `json:"size"`
	Data   []byte      `json:"-"`
}

// MarshalJSON writes the mode as octal text.
func (f File) MarshalJSON() ([]byte, error) {
	type plain File
	return json.Marshal(struct {
		plain
		Mode string `json:"mode"`
	}{plain(f), fmt.Sprintf("%04o", f.Mode.Perm())})
}

// Bundle is every file of one node.
type Bundle struct {
	Node  string `json:"node"`
	Files []File `json:"files"`
}

// Collect reads the files of a node's bundle from the store. It refuses to
// put a CA's private key into the bundle of a node that is not a control
// plane: a worker holding the CA key could mint any identity.
func Collect(plan *catalog.Plan, st store.Store, node string) (*Bundle, error) {
	nb, ok := plan.Bundle(node)
	if !ok {
		return nil, fmt.Errorf("no node %q in the plan", node)
	}
	controlPlane := false
	for _, r := range nb.Roles {
		controlPlane = controlPlane || r == string(cluster.RoleControlPlane)
	}
	b := &Bundle{Node: node}
	for _, f := range nb.Files {
		src, err := sourcePath(plan, st, f)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %s: %w", node, f.Path, err)
		}
		if f.Kind == catalog.SourceKey && !controlPlane && isCA(plan, f.Name) {
			return nil, fmt.Errorf("bundle %s: refusing to put CA key %s on a node without the control-plane role", node, src)
		}
		data, err := os.ReadFile(src)
		if errors.Is(err, fs.ErrNotExist) && f.Kind == catalog.SourceKey && isCA(plan, f.Name) {
			// External-CA mode: the CA key is elsewhere, and stays there.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", node, err)
		}
		mode, err := strconv.ParseUint(f.Mode, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %s: mode %q: %w", node, f.Path, f.Mode, err)
		}
		sum := sha256.Sum256(data)
		b.Files = append(b.Files, File{
			Path: f.Path, Mode: os.FileMode(mode), Owner: f.Owner,
			SHA256: hex.EncodeToString(sum[:]), Size: len(data), Data: data,
		})
	}
	return b, nil
}

func isCA(plan *catalog.Plan, name string) bool {
	c, ok := plan.Cert(name)
	return ok && c.Profile.IsCA
}

// sourcePath is the store file a bundle file is copied from.
func sourcePath(plan *catalog.Plan, st store.Store, f catalog.BundleFile) (string, error) {
	if f.Kind == catalog.SourceKubeconfig {
		k, ok := plan.Kubeconfig(f.Name)
		if !ok {
			return "", fmt.Errorf("kubeconfig %q not in plan", f.Name)
		}
		return st.KubeconfigPath(k.File), nil
	}
	if c, ok := plan.Cert(f.Name); ok {
		switch f.Kind {
		case catalog.SourceCert:
			return st.CertPath(c.Path), nil
		case catalog.SourceKey:
			return st.KeyPath(c.Path), nil
		}
	}
	for _, k := range plan.Keys {
		if k.Name != f.Name {
			continue
		}
		switch f.Kind {
		case catalog.SourceKey:
			return st.KeyPath(k.Path), nil
		case catalog.SourcePublicKey:
			return st.PubPath(k.Path), nil
		}
	}
	return "", fmt.Errorf("no %s %q in plan", f.Kind, f.Name)
}

// Manifest returns the bundle's manifest as indented JSON.
func (b *Bundle) Manifest() ([]byte, error) {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
