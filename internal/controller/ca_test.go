package controller

import (
	"os"
	"testing"
	"time"
)

func TestCAFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := writeCA(t, dir, "ca", time.Hour)
	var reloads, failures int
	files, err := LoadCAFiles(certFile, keyFile, nil, func(err error) {
		reloads++
		if err != nil {
			failures++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !files.Current().Cert.Equal(first.Cert) {
		t.Fatal("not the first CA")
	}
	if reloads != 0 {
		t.Fatalf("reloaded %d times without a change", reloads)
	}

	// Rotate: a new pair under the same names.
	_, _, second := writeCA(t, dir, "ca", time.Hour)
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("rotated CA not picked up")
	}

	// Half a rotation (a new certificate, the old key) keeps the last
	// whole pair.
	third := t.TempDir()
	c3, _, _ := writeCA(t, third, "ca", time.Hour)
	data, err := os.ReadFile(c3)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, certFile, data)
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("a mismatched pair replaced the CA")
	}
	// A file that disappears keeps the CA too.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if !files.Current().Cert.Equal(second.Cert) {
		t.Fatal("a missing key dropped the CA")
	}
	if reloads != 2 || failures != 1 {
		t.Errorf("reloads %d (failures %d), want 2 (1)", reloads, failures)
	}
}

func TestLoadCAFilesRefuses(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCA(t, dir, "a", time.Hour)
	_, otherKey, _ := writeCA(t, dir, "b", time.Hour)
	if _, err := LoadCAFiles(certFile, otherKey, nil, nil); err == nil {
		t.Error("mismatched pair loaded")
	}
	if _, err := LoadCAFiles(certFile, dir+"/missing.key", nil, nil); err == nil {
		t.Error("missing key loaded")
	}
	if _, err := LoadCAFiles(keyFile, keyFile, nil, nil); err == nil {
		t.Error("key as certificate loaded")
	}
}
