package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Referenced are files outside Dir and KubeconfigDir that kubepki writes
// because a kubeconfig of KubeconfigDir refers to them: its
// client-certificate, client-key and certificate-authority files, and the
// kubelet's rotated pair (kubeconfig.ReferencedFiles lists them). Recovery
// finishes a journal naming them, and sweeps their temporary files; any
// other file outside the store it still refuses.
type Referenced struct {
	// Files are the absolute, clean paths the kubeconfigs name (a link
	// such as kubelet-client-current.pem itself, not its target).
	Files []string
	// KubeletDirs are the absolute directories of a referenced link and
	// of the file it names: a renewal writes the kubelet's next
	// kubelet-client-<timestamp>.pem there, as the kubelet does.
	KubeletDirs []string
}

// kubeletPEM matches the files the kubelet's certificate manager (and
// kubepki's renewal) rotates through: kubelet-client-2006-01-02-15-04-05.pem.
var kubeletPEM = regexp.MustCompile(`^kubelet-client-[0-9]{4}(-[0-9]{2}){5}\.pem$`)

// Holds reports whether path, absolute and clean, is one of the
// referenced files or a kubelet-client-<timestamp>.pem of a KubeletDir.
func (r Referenced) Holds(path string) bool {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return false
	}
	if slices.Contains(r.Files, path) {
		return true
	}
	return slices.Contains(r.KubeletDirs, filepath.Dir(path)) && kubeletPEM.MatchString(filepath.Base(path))
}

// dirs are the directories that hold referenced files.
func (r Referenced) dirs() []string {
	var out []string
	for _, f := range r.Files {
		out = append(out, filepath.Dir(f))
	}
	out = append(out, r.KubeletDirs...)
	slices.Sort(out)
	return slices.Compact(out)
}

// referencedTemps lists the temporary files of referenced files (regular
// files, or the links StageSymlink stages) in the directories that hold
// them, except directories tempFiles already searches (skip).
func (s Store) referencedTemps(skip func(dir string) bool) ([]string, error) {
	var out []string
	for _, dir := range s.Referenced.dirs() {
		if skip(dir) {
			continue
		}
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look for temporary files in %s: %w", dir, err)
		}
		for _, d := range entries {
			name := d.Name()
			if !(d.Type().IsRegular() || d.Type() == fs.ModeSymlink) || !tempName.MatchString(name) {
				continue
			}
			base := name[1:strings.LastIndex(name, ".tmp-")]
			if s.Referenced.Holds(filepath.Join(dir, base)) {
				out = append(out, filepath.Join(dir, name))
			}
		}
	}
	return out, nil
}
