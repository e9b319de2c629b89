package resolve

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

// Kind is a kind of place a certificate and its key live in.
type Kind string

// The kinds of location, each with its own reader and writer (as kubeadm's
// renewal/readwriter.go has one per kind).
const (
	// Files: the certificate's own .crt and .key in the PKI directory.
	Files Kind = "files"
	// Embedded: client-certificate-data and client-key-data of a kubeconfig.
	Embedded Kind = "embedded"
	// Referenced: a kubeconfig's client-certificate and client-key name
	// files, as kubectl config set-credentials and the hard way write them.
	Referenced Kind = "referenced"
	// KubeletRotated: a kubeconfig whose client-certificate and client-key
	// are one PEM file holding both, the kubelet's
	// /var/lib/kubelet/pki/kubelet-client-current.pem, usually a symbolic
	// link to the kubelet-client-<timestamp>.pem it last wrote.
	KubeletRotated Kind = "kubelet-rotated"
)

// Location reads and writes one certificate and key where they live.
type Location interface {
	Kind() Kind
	// Path is the file a person looks at for the certificate: the .crt,
	// the kubeconfig, or the PEM file a kubeconfig refers to.
	Path() string
	// Read returns the certificate and its key (nil when the key file is
	// absent). A missing certificate satisfies errors.Is(err, fs.ErrNotExist).
	Read() (*x509.Certificate, crypto.Signer, error)
	// stage adds a new certificate and key to w's transaction.
	stage(w *Writer, cert *x509.Certificate, key crypto.Signer) error
}

// fileLocation is a certificate's own .crt and .key in the PKI directory.
type fileLocation struct {
	st   store.Store
	stem string
}

func (l fileLocation) Kind() Kind      { return Files }
func (l fileLocation) Path() string    { return l.st.CertPath(l.stem) }
func (l fileLocation) KeyPath() string { return l.st.KeyPath(l.stem) }

func (l fileLocation) Read() (*x509.Certificate, crypto.Signer, error) {
	cert, err := l.st.ReadCert(l.stem)
	if err != nil {
		return nil, nil, err
	}
	key, err := l.st.ReadKey(l.stem)
	if errors.Is(err, fs.ErrNotExist) {
		return cert, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func (l fileLocation) stage(w *Writer, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if err := w.file(l.st.KeyPath(l.stem), keyPEM, store.KeyMode); err != nil {
		return err
	}
	return w.file(l.st.CertPath(l.stem), pki.EncodeCert(cert), store.CertMode)
}

// embeddedLocation is the client identity embedded in a kubeconfig.
type embeddedLocation struct{ k *Kubeconfig }

func (l embeddedLocation) Kind() Kind   { return Embedded }
func (l embeddedLocation) Path() string { return l.k.Path }

func (l embeddedLocation) Read() (*x509.Certificate, crypto.Signer, error) {
	if err := l.k.loaded(); err != nil {
		return nil, nil, err
	}
	_, user, err := l.k.current()
	if err != nil {
		return nil, nil, err
	}
	if len(user.ClientCertificateData) == 0 {
		return nil, nil, fmt.Errorf("%s: %w", l.k.Path, kubeconfig.ErrNoClientCert)
	}
	cert, err := pki.ParseCert(user.ClientCertificateData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate-data: %w", l.k.Path, err)
	}
	if len(user.ClientKeyData) == 0 {
		return cert, nil, nil
	}
	key, err := pki.ParseKey(user.ClientKeyData)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-key-data: %w", l.k.Path, err)
	}
	return cert, key, nil
}

func (l embeddedLocation) stage(w *Writer, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	return w.kubeconfig(l.k, func(user *userEntry) {
		user.ClientCertificateData, user.ClientKeyData = pki.EncodeCert(cert), keyPEM
	})
}

// referencedLocation is a kubeconfig whose client-certificate and
// client-key name two files. Writing rewrites those files and keeps the
// references: kubectl refuses a user with both client-certificate and
// client-certificate-data.
type referencedLocation struct {
	k        *Kubeconfig
	certFile string
	keyFile  string
	st       store.Store
}

func (l referencedLocation) Kind() Kind   { return Referenced }
func (l referencedLocation) Path() string { return l.certFile }

func (l referencedLocation) Read() (*x509.Certificate, crypto.Signer, error) {
	data, err := l.st.ReadFile(l.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate: %w", l.k.Path, err)
	}
	cert, err := pki.ParseCert(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate %s: %w", l.k.Path, l.certFile, err)
	}
	if l.keyFile == "" {
		return cert, nil, nil
	}
	data, err = l.st.ReadKeyFile(l.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return cert, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-key: %w", l.k.Path, err)
	}
	key, err := pki.ParseKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-key %s: %w", l.k.Path, l.keyFile, err)
	}
	return cert, key, nil
}

func (l referencedLocation) stage(w *Writer, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if l.keyFile == "" {
		return fmt.Errorf("%s: client-certificate %s has no client-key to write the new key to", l.k.Path, l.certFile)
	}
	if err := w.file(l.keyFile, keyPEM, store.KeyMode); err != nil {
		return err
	}
	if err := w.file(l.certFile, pki.EncodeCert(cert), store.CertMode); err != nil {
		return err
	}
	return w.kubeconfig(l.k, nil)
}

// rotatedLocation is the kubelet's rotated client certificate: one PEM
// file with the certificate and its key, named by kubelet.conf's
// client-certificate and client-key, usually the symbolic link
// kubelet-client-current.pem. It is read through the link (the kubelet's
// own layout); the key's checks apply to the file the link names.
type rotatedLocation struct {
	k    *Kubeconfig
	file string
	st   store.Store
}

func (l rotatedLocation) Kind() Kind   { return KubeletRotated }
func (l rotatedLocation) Path() string { return l.file }

// target is the regular file the PEM path names, and whether it is a link.
func (l rotatedLocation) target() (string, bool, error) {
	fi, err := os.Lstat(l.file)
	if err != nil {
		return "", false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return l.file, false, nil
	}
	resolved, err := filepath.EvalSymlinks(l.file)
	if err != nil {
		return "", true, err
	}
	return resolved, true, nil
}

// outside says why the link names a file outside its own directory, or
// nil. The kubelet links kubelet-client-current.pem only to a
// kubelet-client-<timestamp>.pem beside it; a link elsewhere would have
// renewal write a private key into whatever directory it names.
func (l rotatedLocation) outside() error {
	target, isLink, err := l.target()
	if err != nil || !isLink {
		return nil
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(l.file))
	if err != nil {
		return nil
	}
	absDir, err1 := filepath.Abs(dir)
	absTarget, err2 := filepath.Abs(target)
	if err1 != nil || err2 != nil {
		return nil
	}
	if filepath.Dir(absTarget) != absDir {
		return fmt.Errorf("symbolic link to %s, outside its directory %s: the kubelet links it only to a kubelet-client-<timestamp>.pem beside it; put the file itself here", target, filepath.Dir(l.file))
	}
	return nil
}

// LinkOutside says why a location is a link that points outside its own
// directory (the kubelet's kubelet-client-current.pem linked elsewhere):
// kubepki neither trusts nor writes through it. Nil for every other
// location.
func LinkOutside(l Location) error {
	if rl, ok := l.(rotatedLocation); ok {
		if err := rl.outside(); err != nil {
			return fmt.Errorf("%s: %w", rl.file, err)
		}
	}
	return nil
}

func (l rotatedLocation) Read() (*x509.Certificate, crypto.Signer, error) {
	target, _, err := l.target()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate: %w", l.k.Path, err)
	}
	data, err := l.st.ReadKeyFile(target)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: client-certificate %s: %w", l.k.Path, l.file, err)
	}
	cert, err := pki.ParseCert(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", l.k.Path, l.file, err)
	}
	key, err := pki.ParseKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", l.k.Path, l.file, err)
	}
	return cert, key, nil
}

// kubeletTimestamp is how the kubelet names a rotated pair
// (kubelet-client-2006-01-02-15-04-05.pem, client-go's certificate store).
const kubeletTimestamp = "2006-01-02-15-04-05"

// stage writes a new kubelet-client-<timestamp>.pem beside the old one and
// swings the link, as the kubelet does; the old file stays. A regular file
// is rewritten in place.
func (l rotatedLocation) stage(w *Writer, cert *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	data := append(pki.EncodeCert(cert), keyPEM...)
	target, isLink, err := l.target()
	if err != nil {
		return fmt.Errorf("%s: %w", l.file, err)
	}
	if err := LinkOutside(l); err != nil {
		return err
	}
	if !isLink {
		if err := w.file(target, data, store.KeyMode); err != nil {
			return err
		}
		return w.kubeconfig(l.k, nil)
	}
	newFile := filepath.Join(filepath.Dir(target), "kubelet-client-"+w.now.Local().Format(kubeletTimestamp)+".pem")
	if newFile == target {
		newFile = filepath.Join(filepath.Dir(target), "kubelet-client-"+w.now.Local().Add(time.Second).Format(kubeletTimestamp)+".pem")
	}
	if err := w.file(newFile, data, store.KeyMode); err != nil {
		return err
	}
	if err := w.link(l.file, newFile); err != nil {
		return err
	}
	return w.kubeconfig(l.k, nil)
}

// KeyFile is the file that holds a location's private key, as it is read:
// the .key, a kubeconfig's client-key, the regular file the kubelet's
// link names; "" for a key embedded in a kubeconfig.
func KeyFile(l Location) string {
	switch l := l.(type) {
	case fileLocation:
		return l.KeyPath()
	case referencedLocation:
		return l.keyFile
	case rotatedLocation:
		if target, _, err := l.target(); err == nil {
			return target
		}
		return l.file
	}
	return ""
}
