package kubeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/store"
)

// ReferencedFiles lists the files the kubeconfigs of dir (its *.conf and
// *.kubeconfig files) refer to instead of embedding them — every user's
// client-certificate and client-key, every cluster's
// certificate-authority — resolved as clientcmd resolves them (relative to
// the kubeconfig's directory). A referenced symbolic link (the kubelet's
// kubelet-client-current.pem) adds its directory and its target's to
// KubeletDirs. Each kubeconfig is read as Load reads it; one that cannot
// be read or parsed refers to nothing. Only a directory that cannot be
// listed is an error; a missing one refers to nothing.
func ReferencedFiles(dir string) (store.Referenced, error) {
	var r store.Referenced
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("list the kubeconfigs of %s: %w", dir, err)
	}
	for _, d := range entries {
		name := d.Name()
		if d.IsDir() || !(strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".kubeconfig")) {
			continue
		}
		cfg, err := Load(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
			continue
		}
		var refs []string
		for _, a := range cfg.AuthInfos {
			refs = append(refs, a.ClientCertificate, a.ClientKey)
		}
		for _, c := range cfg.Clusters {
			refs = append(refs, c.CertificateAuthority)
		}
		for _, p := range refs {
			if p == "" {
				continue
			}
			p = filepath.Clean(p)
			r.Files = append(r.Files, p)
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				r.KubeletDirs = append(r.KubeletDirs, filepath.Dir(p))
				if target, err := filepath.EvalSymlinks(p); err == nil {
					if target, err = filepath.Abs(target); err == nil {
						r.KubeletDirs = append(r.KubeletDirs, filepath.Dir(target))
					}
				}
			}
		}
	}
	slices.Sort(r.Files)
	r.Files = slices.Compact(r.Files)
	slices.Sort(r.KubeletDirs)
	r.KubeletDirs = slices.Compact(r.KubeletDirs)
	return r, nil
}
